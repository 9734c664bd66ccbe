/* In-kernel aggregation (--count, --sum, --min, --max, --avg, --stats, --hist, --lhist): an
 * accepted hit adds to its key's value in a per-CPU hash instead of sending an event. The
 * key is the payload's first cfg.agg.key_len bytes (bpf_config.h), so a hit pays for one
 * lookup; a key seen for the first time, for an insert and a second lookup. Per-CPU values
 * need no atomics; the host sums the CPUs' values when it reads them. A layer above
 * bpf/ksurf.bpf.h, beside the interpreter, which calls it; `ksurf lat` uses both. */
#ifndef KSURF_AGG_BPF_H
#define KSURF_AGG_BPF_H

#include "ksurf.bpf.h"

/* errno's E2BIG: what a full hash map's insert returns, negated. */
#define KSURF_E2BIG 7

/* Key and value sizes and the entry count are set by the host for the run: the key is as
 * long as the key fields, the value as long as the histogram. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1);
	__uint(key_size, 8);
	__uint(value_size, sizeof(struct ksurf_agg_value));
} aggs SEC(".maps");

/* A zeroed value of the map's size to insert a new key with: too large for the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, 4);
	__uint(value_size, sizeof(struct ksurf_agg_value));
} agg_zero SEC(".maps");

/* `stack` keys: the stack's id in this map, which keeps each distinct stack once. */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1);
	__uint(key_size, 4);
	__uint(value_size, KSURF_MAX_STACK * 8);
} agg_stacks SEC(".maps");

/* Clears the key's words that strings occupy: a string shorter than its slot leaves the
 * bytes after its NUL as an earlier hit wrote them, which would split one key in many.
 * Runs before the fields are fetched (the filter's ones included). */
static __always_inline void ksurf_agg_zero_key(struct ksurf_scratch *s)
{
#pragma unroll
	for (int i = 0; i < KSURF_AGG_MAX_KEY / 8; i++) {
		if (i >= cfg.agg.zero_words)
			break;
		((__u64 *)s->data)[i] = 0;
	}
}

/* The log2 histogram's bucket of V: 0 for negative values, 1 for 0, k + 2 for
 * [2^k, 2^(k+1)). Branch-free halving, as bpftrace's. */
static __always_inline __u64 ksurf_log2_bucket(__u64 v, int is_signed)
{
	__u64 r = 0, shift;

	if (is_signed && (__s64)v < 0)
		return 0;
	if (v == 0)
		return 1;
	shift = (v > 0xffffffffULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xffff) << 4; v >>= shift; r |= shift;
	shift = (v > 0xff) << 3; v >>= shift; r |= shift;
	shift = (v > 0xf) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r + 2;
}

/* The linear histogram's bucket of V: 0 below lmin, then one per lstep, the last for
 * nbuckets - 2 steps and above. */
static __always_inline __u64 ksurf_linear_bucket(__u64 v)
{
	__u64 steps;

	if (cfg.agg.value_signed ? (__s64)v < cfg.agg.lmin : v < (__u64)cfg.agg.lmin)
		return 0;
	steps = (v - (__u64)cfg.agg.lmin) / cfg.agg.lstep;
	if (steps >= cfg.agg.nbuckets - 2)
		return cfg.agg.nbuckets - 1;
	return steps + 1;
}

static __always_inline int ksurf_agg_less(__u64 a, __u64 b)
{
	return cfg.agg.value_signed ? (__s64)a < (__s64)b : a < b;
}

/* Adds V to KEY's value on this CPU. The counters are looked up only when the map is full:
 * ksurf lat's return has no other use for them. */
static __always_inline void ksurf_agg_add(const void *key, __u64 v)
{
	struct ksurf_agg_value *a = bpf_map_lookup_elem(&aggs, key);
	__u32 zero = 0;
	__u64 b;

	if (!a) {
		const void *init = bpf_map_lookup_elem(&agg_zero, &zero);

		/* A full map refuses the insert with E2BIG, and then the key cannot be there: once
		 * the map fills, every new key would pay a second lookup for nothing. Any other
		 * outcome (inserted; EEXIST when a program that interrupted this one on the CPU
		 * inserted the key first; EBUSY when its bucket was locked) leaves the lookup to
		 * tell. */
		if (init && bpf_map_update_elem(&aggs, key, init, BPF_NOEXIST) != -KSURF_E2BIG)
			a = bpf_map_lookup_elem(&aggs, key);
		if (!a) {
			struct ksurf_scratch *s = ksurf_scratch();

			if (s)
				s->counts[KSURF_STAT_AGG_FULL]++;
			return;
		}
	}
	if (cfg.agg.value_at != KSURF_AGG_NO_VALUE) {
		if (!a->count || ksurf_agg_less(v, a->min))
			a->min = v;
		if (!a->count || ksurf_agg_less(a->max, v))
			a->max = v;
		a->sum += v;
	}
	a->count++;
	if (cfg.agg.hist == KSURF_HIST_NONE)
		return;
	b = cfg.agg.hist == KSURF_HIST_LOG2 ? ksurf_log2_bucket(v, cfg.agg.value_signed) : ksurf_linear_bucket(v);
	/* Never taken: the verifier needs the bound against the map's value size. In 64 bits,
	 * so that the register checked is the one indexed (6.1 loses a bound learned on a
	 * zero-extended copy). */
	if (b >= cfg.agg.nbuckets)
		return;
	a->buckets[b]++;
}

/* The stack's id into the key of a hit that passed the filter, when the key has one. */
static __always_inline void ksurf_agg_stack(void *ctx, struct ksurf_scratch *s)
{
	if (cfg.agg.stack_at != KSURF_AGG_NO_VALUE)
		*(__u64 *)(s->data + cfg.agg.stack_at) = (__u32)bpf_get_stackid(ctx, &agg_stacks, 0);
}

/* A hit that passed the filter, its fields fetched: its key, then its value. */
static __always_inline void ksurf_aggregate(void *ctx, struct ksurf_scratch *s)
{
	__u64 v = 0;

	ksurf_agg_stack(ctx, s);
	if (cfg.agg.value_at != KSURF_AGG_NO_VALUE)
		v = *(__u64 *)(s->data + cfg.agg.value_at);
	ksurf_agg_add(s->data, v);
}

#endif
