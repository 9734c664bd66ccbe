/* A PlannedProbe as the BPF interpreter (bpf/interp.bpf.h) runs it: the host encodes it
 * (src/backend/bpf/encode.cpp) into the `const volatile` rodata of one program instance, so
 * the verifier sees every field of it as a constant and explores only the paths the probe
 * uses. Plain __u8..__u64 only: compiled by clang -target bpf and by g++.
 *
 * An event's payload is laid out by the host: numeric fields first, 8 bytes each (loaded,
 * bits extracted, sign- or zero-extended to 64 bits), then strings and byte arrays at their
 * capacity, then, for a tracepoint printed whole, a copy of its raw record. */
#ifndef KSURF_BPF_CONFIG_H
#define KSURF_BPF_CONFIG_H

#include "ksurf/event.h"

#define KSURF_MAX_FIELDS 16   /* fetched fields, including those only the filter reads */
#define KSURF_MAX_STEPS 8     /* pointer loads (and the skb → header step) per field */
#define KSURF_MAX_OPS 32      /* filter program length */
#define KSURF_MAX_PATTERNS 8  /* distinct strings the filter compares with */
#define KSURF_MAX_PATTERN 64  /* bytes of one such string */
#define KSURF_MAX_STR 256     /* capacity of a string field, NUL included */
#define KSURF_MAX_PIDS 4096   /* processes -p and -c trace, children included */

/* Where a field's chain starts. */
enum ksurf_base {
	KSURF_BASE_CTX = 0,   /* the context's address (a tracepoint's record) */
	KSURF_BASE_CTX_U64,   /* the u64 at ctx + base_off: fentry/fexit slot, pt_regs member */
	KSURF_BASE_COMM,
	KSURF_BASE_PID,       /* thread group id */
	KSURF_BASE_TID,
	KSURF_BASE_CPU,
	KSURF_BASE_ADDR,      /* a kernel address, base_hi << 32 | (__u32)base_off: a variable */
};

/* How the value at the end of the chain is taken. */
enum ksurf_access {
	KSURF_ACCESS_VALUE = 0, /* the value itself */
	KSURF_ACCESS_LOAD,      /* `size` (1..8) bytes at value + offset, as a number */
	KSURF_ACCESS_BYTES,     /* `size` raw bytes at value + offset */
	KSURF_ACCESS_STRING,    /* NUL-terminated string at value + offset, `size` with the NUL */
	KSURF_ACCESS_DATALOC,   /* __data_loc string whose u32 locator is at value + offset */
	KSURF_ACCESS_USER_LOAD,   /* LOAD from user memory */
	KSURF_ACCESS_USER_STRING, /* STRING from user memory */
};

#define KSURF_NO_PACKET 0xff

struct ksurf_field_cfg {
	__u8 base;        /* enum ksurf_base */
	__u8 access;      /* enum ksurf_access */
	__u8 nsteps;
	__u8 packet_step; /* before steps[packet_step] the value (an sk_buff *) becomes the
			   * address of its header at `layer`; KSURF_NO_PACKET: none */
	__u8 layer;       /* 2, 3, 4: mac_header, network_header, transport_header */
	__u8 is_signed;
	__u8 lshift;      /* numbers: value = (value << lshift) >> rshift, arithmetic if */
	__u8 rshift;      /* signed: keeps a bitfield's or a narrow type's bits, extended */
	__u16 size;
	__u16 out;        /* payload offset */
	__s32 base_off;
	__s32 offset;     /* of the final access */
	__s32 steps[KSURF_MAX_STEPS]; /* value = *(u64 *)(value + steps[i]) */
	__u32 base_hi;    /* KSURF_BASE_ADDR: the address's upper half (module data does not
			   * fit a sign-extended base_off) */
};

/* The filter: a postfix program over a stack of booleans, all comparisons evaluated. */
enum ksurf_op_code {
	KSURF_OP_EQ = 0,    /* numbers: payload u64 at `at` against imm */
	KSURF_OP_NE,
	KSURF_OP_LT,
	KSURF_OP_LE,
	KSURF_OP_GT,
	KSURF_OP_GE,
	KSURF_OP_SLT,
	KSURF_OP_SLE,
	KSURF_OP_SGT,
	KSURF_OP_SGE,
	KSURF_OP_STR_EQ,    /* strings: field `field` at `at` against patterns[slot] */
	KSURF_OP_STR_PREFIX,
	KSURF_OP_STR_SUFFIX,
	KSURF_OP_STR_CONTAINS,
	KSURF_OP_AND,       /* pop two, push one */
	KSURF_OP_OR,
	KSURF_OP_NOT,
};

struct ksurf_op {
	__u8 code;  /* enum ksurf_op_code */
	__u8 field;
	__u8 slot;
	__u8 pad;
	__u16 at;   /* payload offset of the operand */
	__u16 pad2;
	__u64 imm;
};

/* Compared a u64 word at a time: `full` whole words, then words[full] under `last_mask`
 * (the len % 8 bytes left; 0 when none are). */
struct ksurf_pattern {
	__u64 words[KSURF_MAX_PATTERN / 8 + 1];
	__u64 last_mask;
	__u32 len;
	__u32 full;
};

/* One classic BPF instruction, struct sock_filter's layout. */
#define KSURF_MAX_CBPF 64
struct ksurf_cbpf {
	__u16 code;
	__u8 jt;
	__u8 jf;
	__u32 k;
};

/* Kernel structure offsets the programs read, found by the host in BTF: the programs carry
 * no CO-RE relocations, so libbpf never parses the kernel's BTF a second time. */
struct ksurf_layout {
	__u16 skb_head;
	__u16 skb_data;
	__u16 skb_len;
	__u16 skb_tail;
	__u16 skb_mac_header;
	__u16 skb_network_header;
	__u16 skb_transport_header;
	__u16 task_tgid;
	/* comm in task_struct; 0 where the programs cannot reach the task through BTF
	 * (bpf_get_current_task_btf() came in 5.11): the compiled filter loads its words from
	 * there instead of copying it with bpf_get_current_comm(). */
	__u16 task_comm;
	__u16 pad[3];
};

/* --count, --sum, --hist... (bpf/agg.bpf.h): instead of an event, an accepted hit updates
 * the per-CPU value of its key in the `aggs` hash. The key is the payload's first key_len
 * bytes: the host lays the key fields out there, each in 8-byte words, zeroed before any
 * field is fetched when a string's tail would otherwise keep an earlier hit's bytes. */
#define KSURF_AGG_MAX_KEY 512         /* key bytes */
#define KSURF_AGG_LOG2_BUCKETS 66     /* < 0, 0, then [2^k, 2^(k+1)) for k = 0..63 */
#define KSURF_AGG_MAX_LINEAR 1024     /* --lhist steps, plus one bucket each side */
#define KSURF_AGG_NO_VALUE 0xffff

enum ksurf_agg_hist {
	KSURF_HIST_NONE = 0,
	KSURF_HIST_LOG2,
	KSURF_HIST_LINEAR,
};

/* The value of one key on one CPU; `buckets` has the map's value size. */
struct ksurf_agg_value {
	__u64 count;
	__u64 sum;
	__u64 min;  /* signed when the value is */
	__u64 max;
	__u64 buckets[];
};

struct ksurf_agg_cfg {
	__u8 on;            /* aggregate; send no events */
	__u8 hist;          /* enum ksurf_agg_hist */
	__u8 value_signed;
	__u8 pad0;
	__u16 key_len;      /* the map's key size: a multiple of 8 */
	__u16 zero_words;   /* u64 words of the key zeroed before fetching */
	__u16 value_at;     /* payload offset of the u64 value; KSURF_AGG_NO_VALUE: count only */
	__u16 stack_at;     /* payload offset of the stack id; KSURF_AGG_NO_VALUE: none */
	__u16 nbuckets;     /* of the value; 0 without a histogram */
	__u16 pad;
	__s64 lmin;         /* linear: buckets[1 + (v - lmin) / lstep], below and above outside */
	__u64 lstep;
};

struct ksurf_config {
	__u32 probe_id;      /* unless id_from_cookie */
	__u16 nfields;
	__u16 nfilter;       /* fields [0, nfilter) are the filter's, fetched before it runs */
	__u16 nops;
	__u16 data_len;      /* payload bytes per event */
	__u16 record_out;    /* payload offset of the raw record copy */
	__u16 record_len;    /* 0: no copy */
	struct ksurf_field_cfg fields[KSURF_MAX_FIELDS];
	struct ksurf_op ops[KSURF_MAX_OPS];
	struct ksurf_pattern patterns[KSURF_MAX_PATTERNS];
	/* Who is traced, checked before anything is fetched (-p, -c, --cgroup): */
	__u8 by_pid;         /* only thread groups in the `pids` map */
	__u8 stack;          /* -s: the kernel stack ends each event */
	__u8 id_from_cookie; /* kprobe.multi: each function's probe id is its attach cookie */
	__u8 count_filtered; /* count the hits the filter rejects (KSURF_STAT_FILTERED); off, the
			      * rejecting path stores nothing (see ksurf_accept) */
	__u32 self_tgid;     /* ksurf's own process, never traced (its reads and writes would
			      * feed its own probes); 0: traced like any other */
	__u64 cgroup_id;     /* only tasks in the cgroup (v2) with this id; 0: any */
	/* --pcap and -w (bpf/pcap.bpf.h): a classic BPF program run on the packet from its
	 * network header, after the filter passed; the sk_buff is filter field `pcap_field`. */
	__u16 ncbpf;         /* program length; 0: no program */
	__u8 pcap_field;
	__u8 pad5;
	__u16 snaplen;       /* -w: bytes of the packet copied to payload offset pkt_out */
	__u16 pkt_out;       /* (a u32 wire length, a u32 copied length, then the bytes) */
	struct ksurf_cbpf cbpf[KSURF_MAX_CBPF];
	struct ksurf_layout layout;
	struct ksurf_agg_cfg agg;
};

#endif
