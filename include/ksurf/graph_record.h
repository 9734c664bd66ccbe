/* Records and rodata of the call-graph recorder (bpf/graph.bpf.c), shared with the host.
 * Plain __u8..__u64 only: compiled by clang -target bpf and by g++. */
#ifndef KSURF_GRAPH_RECORD_H
#define KSURF_GRAPH_RECORD_H

#include "ksurf/event.h"

enum ksurf_graph_kind {
	KSURF_GRAPH_OPEN = 0, /* ROOT entered and its predicate held: a recording starts */
	KSURF_GRAPH_ENTRY,    /* a traced function entered inside a recording */
	KSURF_GRAPH_EXIT,
	KSURF_GRAPH_CLOSE,    /* ROOT returned: `value` is its return value */
};

/* The execution context a recording belongs to (preempt_count's bits). */
enum ksurf_graph_context {
	KSURF_CTX_TASK = 0,
	KSURF_CTX_SOFTIRQ,
	KSURF_CTX_HARDIRQ,
	KSURF_CTX_NMI,
};

/* One ring buffer record. An OPEN is followed, in the same ring, by a struct ksurf_event
 * whose probe_id is the graph id and whose payload is ROOT's fields: the host tells them
 * apart by size (a ksurf_event is larger). */
struct ksurf_graph_rec {
	__u64 ts_ns;
	__u64 value;   /* CLOSE: ROOT's return value */
	__u32 graph;   /* 1, 2, ... in the order recordings start */
	__u32 func;    /* index into the host's function table; ROOT is 0 */
	__u16 depth;   /* ROOT is 0, its callees 1, ... */
	__u8 kind;     /* enum ksurf_graph_kind */
	__u8 context;  /* enum ksurf_graph_context */
	__u32 pad;
};

/* Global (not per-CPU) counters: sampling and --max must see every CPU's recordings
 * (except in the build without fetching atomics: bpf/graph.bpf.c). */
enum ksurf_graph_count {
	KSURF_GCOUNT_MATCHED = 0, /* ROOT calls whose predicate held */
	KSURF_GCOUNT_STARTED,     /* recordings admitted by sampling; --max applies to these */
	KSURF_GCOUNT_SAMPLED_OUT,
	KSURF_GCOUNT_OVER_MAX,
	KSURF_GCOUNT_DEEP,        /* callee calls below --depth levels, not recorded */
	KSURF_GCOUNT_NO_ROOM,     /* recordings not opened: the table of open ones was full */
	KSURF_GCOUNT_MAX,
};

/* Rodata of every graph program instance, next to the interpreter's ksurf_config. */
struct ksurf_graph_config {
	__u32 func;       /* this instance's function, unless func_from_cookie */
	__u32 sample;     /* record 1 of every `sample` matching ROOT calls; 0, 1: all */
	__u64 max;        /* recordings to start at most; 0: unlimited */
	__u32 max_depth;  /* record callees at most this deep; 0: unlimited */
	__s32 ret_off;    /* ROOT's exit program: its return value is the u64 at ctx + ret_off */
	__u32 slots;      /* the build without fetching atomics: possible CPUs * contexts */
	__u8 func_from_cookie; /* kprobe.multi: each function's index is its attach cookie */
	__u8 pad[3];
	/* For kernels whose BTF lacks per-CPU variables: the kallsyms addresses of the per-CPU
	 * __preempt_count (an offset in the per-CPU area) and of the __per_cpu_offset array. */
	__u64 preempt_count;
	__u64 per_cpu_offset;
};

#endif
