// SPDX-License-Identifier: GPL-2.0
/* ksurf lat FUNC: the entry program runs the probe's predicate (the interpreter's
 * ksurf_accept()) and, when it holds, stores the time and the aggregation key for the
 * current context (bpf/context.bpf.h: the thread, or the CPU and interrupt level); the
 * return program takes them back and adds the time since to the key's log2 histogram
 * (bpf/agg.bpf.h). A call that fails the predicate stores nothing, so its return costs one
 * lookup. Both are cloned per probe with their own rodata, as bpf/probe.bpf.c is. */
#include "context.bpf.h"
#include "interp.bpf.h"

/* Context key → the key (cfg.agg.key_len bytes) then the entry time: the host sizes it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(key_size, 8);
	__uint(value_size, 8);
} starts SEC(".maps");

SEC("raw_tp")
int ksurf_lat_entry(void *ctx)
{
	struct ksurf_scratch *s = ksurf_take(ctx);
	__u8 context;
	__u64 key;

	if (!s)
		return 0;
	ksurf_agg_stack(ctx, s);
	key = context_key(&context);
	/* Last: the time of the call, not of the predicate. */
	*(__u64 *)(s->data + cfg.agg.key_len) = bpf_ktime_get_ns();
	/* A call that recurses overwrites its caller's start: the inner pair is measured. */
	if (bpf_map_update_elem(&starts, &key, s->data, BPF_ANY))
		s->counts[KSURF_STAT_LAT_LOST]++;
	else
		s->counts[KSURF_STAT_LAT_STARTED]++;
	return 0;
}

/* Most returns are of calls the predicate refused: they cost the context key and one
 * lookup, and the clock is read only for a started call (after that lookup, as a
 * bpftrace kretprobe reads nsecs after its map's). */
SEC("raw_tp")
int ksurf_lat_return(void *ctx)
{
	__u8 context;
	__u64 key = context_key(&context);
	__u8 *start = bpf_map_lookup_elem(&starts, &key);
	struct ksurf_scratch *s;
	__u64 now;

	if (!start)
		return 0;
	now = bpf_ktime_get_ns();
	s = ksurf_scratch();
	if (!s)
		return 0;
	ksurf_agg_add(s, start, now - *(__u64 *)(start + cfg.agg.key_len));
	bpf_map_delete_elem(&starts, &key);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
