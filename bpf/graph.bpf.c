// SPDX-License-Identifier: GPL-2.0
/* The call-graph recorder: ROOT's entry program opens a recording for the current execution
 * context when ROOT's predicate holds (the interpreter's ksurf_accept()); the programs on
 * the callees record entry and exit only while their context has one open; ROOT's exit
 * closes it. A ROOT call that fails the predicate costs the filter and nothing more, and a
 * callee hit outside a recording costs one hash lookup.
 *
 * A context is the task, or, in interrupt context, the CPU with its preempt_count
 * interrupt bits: a packet handled in a softirq on top of a task must not be recorded into
 * that task's graph, nor the task's calls into the packet's. */
#include "context.bpf.h"
#include "interp.bpf.h"

struct graph_state {
	__u32 graph;
	__u16 depth;
	__u8 context;
	__u8 pad;
};

/* Open recordings by context key; the host sizes it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct graph_state);
} recordings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KSURF_GCOUNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gcounts SEC(".maps");

#ifndef KSURF_GRAPH_NO_ATOMIC_FETCH
static __always_inline __u64 gcount_next(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&gcounts, &which);

	return v ? __sync_fetch_and_add(v, 1) : 0;
}

/* Whether a matching ROOT call starts a recording, and its graph id: global fetch-adds
 * make --sample and --max exact and the ids 1, 2, ... in start order. */
static __always_inline bool admit(__u8 context, __u32 *graph)
{
	__u64 n = gcount_next(KSURF_GCOUNT_MATCHED);

	if (gcfg.sample > 1 && n % gcfg.sample) {
		ksurf_count(&gcounts, KSURF_GCOUNT_SAMPLED_OUT);
		return false;
	}
	n = gcount_next(KSURF_GCOUNT_STARTED);
	if (gcfg.max && n >= gcfg.max) {
		ksurf_count(&gcounts, KSURF_GCOUNT_OVER_MAX);
		return false;
	}
	*graph = n + 1;
	return true;
}
#else
/* Before 5.12 the verifier rejects any fetching atomic, even in dead code, so this build
 * has none. A slot is a (CPU, context) pair: programs in one slot never run concurrently
 * (no preemption inside a BPF program, and a context does not nest in itself), so plain
 * per-CPU increments are exact in it. Hence:
 * - --sample 1/N is exact per slot: recorded = sum over slots of ceil(matched_slot / N);
 * - graph ids are unique, slot + 1 + slots * (the slot's recordings before), not ordered;
 * - --max reads the global count then bumps it: CPUs racing past the test may overshoot
 *   by at most the number of slots, and the host prints no more than --max graphs. */
struct graph_slot {
	__u64 matched;
	__u64 started;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KSURF_CTX_NMI + 1);
	__type(key, __u32);
	__type(value, struct graph_slot);
} gslots SEC(".maps");

static __always_inline bool admit(__u8 context, __u32 *graph)
{
	__u32 k = context, which = KSURF_GCOUNT_STARTED;
	struct graph_slot *slot = bpf_map_lookup_elem(&gslots, &k);
	__u64 *started = bpf_map_lookup_elem(&gcounts, &which);

	if (!slot || !started)
		return false;
	ksurf_count(&gcounts, KSURF_GCOUNT_MATCHED);
	if (gcfg.sample > 1 && slot->matched++ % gcfg.sample) {
		ksurf_count(&gcounts, KSURF_GCOUNT_SAMPLED_OUT);
		return false;
	}
	if (gcfg.max && *started >= gcfg.max) {
		ksurf_count(&gcounts, KSURF_GCOUNT_OVER_MAX);
		return false;
	}
	__sync_fetch_and_add(started, 1);
	*graph = (bpf_get_smp_processor_id() * (KSURF_CTX_NMI + 1) + context) + 1 + gcfg.slots * slot->started++;
	return true;
}
#endif
static __always_inline void emit(const struct graph_state *st, __u8 kind, __u32 func, __u16 depth, __u64 value)
{
	struct ksurf_graph_rec r = {
		.ts_ns = bpf_ktime_get_ns(),
		.value = value,
		.graph = st->graph,
		.func = func,
		.depth = depth,
		.kind = kind,
		.context = st->context,
	};

	if (bpf_ringbuf_output(&events, &r, sizeof(r), 0)) {
		struct ksurf_scratch *s = ksurf_scratch();

		if (s)
			s->counts[KSURF_STAT_DROPPED]++;
	}
}

/* A traced function entered or left in a context with an open recording. */
static __always_inline void call(struct graph_state *st, __u8 kind, __u32 func)
{
	if (kind == KSURF_GRAPH_ENTRY) {
		__u16 depth = ++st->depth;

		if (gcfg.max_depth && depth > gcfg.max_depth) {
			ksurf_count(&gcounts, KSURF_GCOUNT_DEEP);
			return;
		}
		emit(st, kind, func, depth, 0);
		return;
	}
	/* An exit at depth 0 is of a call that began before the recording did. */
	if (!st->depth)
		return;
	if (!gcfg.max_depth || st->depth <= gcfg.max_depth)
		emit(st, kind, func, st->depth, 0);
	st->depth--;
}

static __always_inline int callee(__u8 kind, __u32 func)
{
	__u8 context;
	__u64 key = context_key(&context);
	struct graph_state *st = bpf_map_lookup_elem(&recordings, &key);

	if (st)
		call(st, kind, func);
	return 0;
}

static __always_inline int root_entry(void *ctx)
{
	__u8 context;
	__u64 key = context_key(&context);
	struct graph_state *open = bpf_map_lookup_elem(&recordings, &key), st = {};
	struct ksurf_scratch *s;

	/* ROOT recursing inside its own recording is one more call in it. */
	if (open) {
		call(open, KSURF_GRAPH_ENTRY, gcfg.func);
		return 0;
	}
	s = ksurf_scratch();
	if (!s)
		return 0;
	s->counts[KSURF_STAT_HITS]++;
	if (!ksurf_accept(ctx, s))
		return 0;
	ksurf_capture(s, 0);
	if (!admit(context, &st.graph))
		return 0;
	st.context = context;
	if (bpf_map_update_elem(&recordings, &key, &st, BPF_NOEXIST)) {
		ksurf_count(&gcounts, KSURF_GCOUNT_NO_ROOM);
		return 0;
	}
	ksurf_fetch_rest(ctx, s);
	emit(&st, KSURF_GRAPH_OPEN, gcfg.func, 0, 0);
	s->ev.probe_id = st.graph;
	ksurf_submit(s, cfg.data_len);
	return 0;
}

static __always_inline int root_exit(void *ctx)
{
	__u8 context;
	__u64 key = context_key(&context), ret = 0;
	struct graph_state *st = bpf_map_lookup_elem(&recordings, &key);

	if (!st)
		return 0;
	if (st->depth) {
		call(st, KSURF_GRAPH_EXIT, gcfg.func);
		return 0;
	}
	bpf_probe_read_kernel(&ret, sizeof(ret), ctx + gcfg.ret_off);
	emit(st, KSURF_GRAPH_CLOSE, gcfg.func, 0, ret);
	bpf_map_delete_elem(&recordings, &key);
	return 0;
}

/* One program per role, for every attach type: the host loads them once and clones them
 * per target with the target's rodata and program type (src/attach), so fentry/fexit,
 * kprobes and kprobe.multi run the same code. */
static __always_inline __u32 func_id(void *ctx)
{
	return gcfg.func_from_cookie ? bpf_get_attach_cookie(ctx) : gcfg.func;
}

SEC("raw_tp")
int graph_root_entry(void *ctx)
{
	return root_entry(ctx);
}

SEC("raw_tp")
int graph_root_exit(void *ctx)
{
	return root_exit(ctx);
}

SEC("raw_tp")
int graph_entry(void *ctx)
{
	return callee(KSURF_GRAPH_ENTRY, func_id(ctx));
}

SEC("raw_tp")
int graph_exit(void *ctx)
{
	return callee(KSURF_GRAPH_EXIT, func_id(ctx));
}

char LICENSE[] SEC("license") = "GPL";
