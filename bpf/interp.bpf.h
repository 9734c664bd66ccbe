/* The interpreter of a ksurf_config (include/ksurf/bpf_config.h), the top layer (on
 * bpf/pcap.bpf.h and bpf/agg.bpf.h): fetch the fields, run the filter, send the event. Every program type runs the same code: what differs between
 * fentry, kprobe and tracepoint contexts the host has already turned into offsets.
 *
 * The verifier knows every config value: rodata is frozen, and the loops over fields, steps
 * and filter ops are unrolled so that each iteration reads its part at a constant offset.
 * It therefore walks only the branches a probe uses. Fetching a field and evaluating a
 * comparison are static subprograms rather than inlined: the verifier checks each call
 * with the caller's constant index just the same, and the code exists once instead of once
 * per unrolled iteration. Loops whose trip count depends on data (string search) are
 * bounded, never bpf_loop: 5.10 has none. */
#ifndef KSURF_INTERP_BPF_H
#define KSURF_INTERP_BPF_H

#include "agg.bpf.h"
#include "pcap.bpf.h"

/* Failed reads leave zeroes (bpf_probe_read_kernel clears its destination), so a fault
 * anywhere in a chain yields 0 or "" rather than stale data. */
static __noinline int ksurf_fetch(void *ctx, struct ksurf_scratch *s, __u32 i)
{
	const volatile struct ksurf_field_cfg *f = &cfg.fields[i];
	void *out = s->data + f->out;
	void *at;
	__u64 v = 0;
	long n;

	switch (f->base) {
	case KSURF_BASE_CTX:
		v = (__u64)ctx;
		break;
	case KSURF_BASE_CTX_U64:
		bpf_probe_read_kernel(&v, sizeof(v), ctx + f->base_off);
		break;
	/* Fetched here, not before the filter runs: a hit pays for what its filter reads. comm
	 * is always the whole string (the host encodes it so); the helper does not pad it with
	 * NULs on every kernel (6.1's does not), so an aggregation key holding it is zeroed
	 * first (zero_words). Only the filter's string comparisons need its length. */
	case KSURF_BASE_COMM:
		bpf_get_current_comm(out, f->size);
		if (i < cfg.nfilter && cfg.nops) {
			n = bpf_probe_read_kernel_str(s->ev.comm, sizeof(s->ev.comm), out);
			s->len[i] = n > 0 ? n - 1 : 0;
		}
		return 0;
	case KSURF_BASE_PID:
		v = bpf_get_current_pid_tgid() >> 32;
		break;
	case KSURF_BASE_TID:
		v = (__u32)bpf_get_current_pid_tgid();
		break;
	case KSURF_BASE_CPU:
		v = bpf_get_smp_processor_id();
		break;
	/* Constants to the verifier: the address costs it nothing to track. */
	case KSURF_BASE_ADDR:
		v = (__u64)f->base_hi << 32 | (__u32)f->base_off;
		break;
	}
#pragma unroll
	for (int j = 0; j < KSURF_MAX_STEPS; j++) {
		if (j >= f->nsteps)
			break;
		if (j == f->packet_step)
			v = ksurf_packet(v, f->layer);
		bpf_probe_read_kernel(&v, sizeof(v), (void *)(v + f->steps[j]));
	}
	if (f->packet_step == f->nsteps)
		v = ksurf_packet(v, f->layer);

	at = (void *)(v + f->offset);
	switch (f->access) {
	case KSURF_ACCESS_VALUE:
		break;
	case KSURF_ACCESS_LOAD:
		v = 0;
		bpf_probe_read_kernel(&v, f->size, at);
		break;
	case KSURF_ACCESS_USER_LOAD:
		v = 0;
		bpf_probe_read_user(&v, f->size, at);
		break;
	case KSURF_ACCESS_USER_STRING:
		n = bpf_probe_read_user_str(out, f->size, at);
		s->len[i] = n > 0 ? n - 1 : 0;
		return 0;
	case KSURF_ACCESS_BYTES:
		bpf_probe_read_kernel(out, f->size, at);
		return 0;
	case KSURF_ACCESS_DATALOC: {
		__u32 loc = 0;

		/* The locator's offset counts from the record, which is the chain's value. */
		bpf_probe_read_kernel(&loc, sizeof(loc), at);
		at = (void *)(v + (loc & 0xffff));
	}
		/* fallthrough */
	case KSURF_ACCESS_STRING:
		n = bpf_probe_read_kernel_str(out, f->size, at);
		s->len[i] = n > 0 ? n - 1 : 0;
		return 0;
	}
	if (f->is_signed)
		v = (__s64)(v << f->lshift) >> f->rshift;
	else
		v = (v << f->lshift) >> f->rshift;
	*(__u64 *)out = v;
	return 0;
}

/* Whether the bytes at P start with the pattern: FULL whole WORDS, then WORDS[FULL] under
 * LAST_MASK (P may run on). This runs for every position of a string search, and its
 * length is what the verifier pays per position: the pattern is in locals, read once. */
static __always_inline int ksurf_match_at(const __u8 *p, const __u64 *words, __u32 full, __u64 last_mask)
{
	const __u64 *w = (const __u64 *)p;
	__u64 diff = (w[full] ^ words[full]) & last_mask;

#pragma unroll
	for (int i = 0; i < KSURF_MAX_PATTERN / 8; i++) {
		if (i >= full)
			break;
		diff |= w[i] ^ words[i];
	}
	return diff == 0;
}

static __always_inline int ksurf_match(struct ksurf_scratch *s, const volatile struct ksurf_op *op)
{
	const volatile struct ksurf_pattern *pat = &cfg.patterns[op->slot];
	const __u8 *hay = s->data + op->at;
	/* Lengths are below KSURF_MAX_STR already; the mask tells the verifier so without a
	 * branch, which would split the search into two states to verify. */
	__u32 len = s->len[op->field] & (KSURF_MAX_STR - 1), plen = pat->len, full = pat->full;
	__u32 start = 0, tries = 1;
	__u64 last_mask = pat->last_mask, words[KSURF_MAX_PATTERN / 8 + 1];

#pragma unroll
	for (int i = 0; i < KSURF_MAX_PATTERN / 8 + 1; i++)
		words[i] = pat->words[i];
	if (len < plen || (op->code == KSURF_OP_STR_EQ && len != plen))
		return 0;
	if (op->code == KSURF_OP_STR_SUFFIX)
		start = len - plen;
	if (op->code == KSURF_OP_STR_CONTAINS)
		tries = len - plen + 1;
	for (__u32 k = 0; k < KSURF_MAX_STR; k++) {
		if (k >= tries)
			break;
		if (ksurf_match_at(hay + start + k, words, full, last_mask))
			return 1;
	}
	return 0;
}

/* String comparisons: a subprogram, their search loop exists once. */
static __noinline int ksurf_match_op(struct ksurf_scratch *s, __u32 i)
{
	return ksurf_match(s, &cfg.ops[i]);
}

/* Inlined in each filter slot: the verifier keeps only the one comparison a slot's
 * constant op code selects, a few instructions where a call cost more than the compare. */
static __always_inline int ksurf_compare(struct ksurf_scratch *s, __u32 i)
{
	const volatile struct ksurf_op *op = &cfg.ops[i];
	__u64 v = *(__u64 *)(s->data + op->at), imm = op->imm;

	switch (op->code) {
	case KSURF_OP_EQ: return v == imm;
	case KSURF_OP_NE: return v != imm;
	case KSURF_OP_LT: return v < imm;
	case KSURF_OP_LE: return v <= imm;
	case KSURF_OP_GT: return v > imm;
	case KSURF_OP_GE: return v >= imm;
	case KSURF_OP_SLT: return (__s64)v < (__s64)imm;
	case KSURF_OP_SLE: return (__s64)v <= (__s64)imm;
	case KSURF_OP_SGT: return (__s64)v > (__s64)imm;
	case KSURF_OP_SGE: return (__s64)v >= (__s64)imm;
	default: return ksurf_match_op(s, i);
	}
}

/* The postfix filter over a stack of booleans kept as bits; an empty program passes.
 * The stack lives in map memory, which the verifier does not track: were it a register,
 * each combination of earlier results would be a distinct state to verify the rest with. */
static __always_inline int ksurf_filter(struct ksurf_scratch *s)
{
	volatile __u64 *stack = &s->stack;
	__u64 top;

	*stack = 1;

#pragma unroll
	for (int i = 0; i < KSURF_MAX_OPS; i++) {
		const volatile struct ksurf_op *op = &cfg.ops[i];

		if (i >= cfg.nops)
			break;
		switch (op->code) {
		case KSURF_OP_AND:
			top = *stack & 1;
			*stack = (*stack >> 1) & (top | ~1ULL);
			break;
		case KSURF_OP_OR:
			top = *stack & 1;
			*stack = (*stack >> 1) | top;
			break;
		case KSURF_OP_NOT:
			*stack ^= 1;
			break;
		default:
			top = ksurf_compare(s, i);
			*stack = *stack << 1 | top;
		}
	}
	return *stack & 1;
}

/* Whether the probe takes this hit: the fields the filter reads come first in cfg.fields
 * (the first `nfilter`) and are fetched before it runs; a rejected hit costs nothing
 * more, and is counted only when the run asks (cfg.count_filtered). Every program that
 * gates on a probe's predicate (events here, call graphs in bpf/graph.bpf.c, latencies
 * in bpf/lat.bpf.c) goes through this, before ksurf_capture(); a compiled filter
 * (src/codegen) does the same, in the same order. */
static __always_inline int ksurf_accept(void *ctx, struct ksurf_scratch *s)
{
	/* Tasks outside -p/-c/--cgroup are not the user's to see: not counted as filtered. */
	if (cfg.by_pid) {
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;

		if (!bpf_map_lookup_elem(&pids, &tgid))
			return 0;
	}
	if (cfg.cgroup_id && bpf_get_current_cgroup_id() != cfg.cgroup_id)
		return 0;
#pragma unroll
	for (int i = 0; i < KSURF_MAX_FIELDS; i++) {
		if (i >= cfg.nfilter)
			break;
		ksurf_fetch(ctx, s, i);
	}
	/* Counting is asked for, not the default: it is the one store to map memory on the
	 * rejecting path. On an AMD EPYC VM the compiled filter's lookup of this counter and
	 * its store took a rejection from 40 to 74 ns (bpftrace's: 39) for the same
	 * predicate; here, where the scratch is already at hand, it is the store. */
	if (!ksurf_filter(s) || !ksurf_pcap(s)) {
		if (cfg.count_filtered)
			s->counts[KSURF_STAT_FILTERED]++;
		return 0;
	}
	/* ksurf's own hits, after the filter: one it rejects is rejected whoever made it (and
	 * counted as filtered), so the hits a filter rejects skip this helper call. */
	if (cfg.self_tgid && bpf_get_current_pid_tgid() >> 32 == cfg.self_tgid)
		return 0;
	return 1;
}

/* -s: the kernel stack after LEN bytes of payload, from the next 8-byte boundary; the
 * event's new length. Only hits that passed the filter pay for the unwind. */
static __always_inline __u32 ksurf_stack(void *ctx, struct ksurf_scratch *s, __u32 len)
{
	__u32 at = (len + 7) & ~7U;
	long n = bpf_get_stack(ctx, s->data + at, KSURF_MAX_STACK * 8, 0);

	if (n <= 0 || n > KSURF_MAX_STACK * 8)
		return len;
	s->ev.stack_len = n;
	return at + n;
}

/* The fields the filter does not read, fetched only for hits that pass. */
static __always_inline void ksurf_fetch_rest(void *ctx, struct ksurf_scratch *s)
{
#pragma unroll
	for (int i = 0; i < KSURF_MAX_FIELDS; i++) {
		if (i < cfg.nfilter)
			continue;
		if (i >= cfg.nfields)
			break;
		ksurf_fetch(ctx, s, i);
	}
}

/* The scratch of a hit that passed the gates and the filter, with every field fetched; 0
 * for one that did not. Events and latencies both start here. */
static __always_inline struct ksurf_scratch *ksurf_take(void *ctx)
{
	struct ksurf_scratch *s = ksurf_scratch();

	if (!s)
		return 0;
	if (cfg.agg.zero_words)
		ksurf_agg_zero_key(s);
	if (!ksurf_accept(ctx, s))
		return 0;
	ksurf_fetch_rest(ctx, s);
	return s;
}

static __always_inline int ksurf_run(void *ctx, __u32 probe_id)
{
	struct ksurf_scratch *s = ksurf_take(ctx);

	if (!s)
		return 0;
	/* An aggregating run sends no events: no header, no clock read. */
	if (cfg.agg.on) {
		ksurf_aggregate(ctx, s);
		return 0;
	}
	ksurf_capture(s, probe_id);
	/* A short record reads on into the same per-CPU trace buffer; the host decodes only
	 * within the offsets the record itself gives. */
	if (cfg.record_len)
		bpf_probe_read_kernel(s->data + cfg.record_out, cfg.record_len, ctx);
	if (cfg.snaplen)
		ksurf_pcap_copy(s);
	ksurf_submit(s, cfg.stack ? ksurf_stack(ctx, s, cfg.data_len) : cfg.data_len);
	return 0;
}

#endif
