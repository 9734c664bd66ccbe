// SPDX-License-Identifier: GPL-2.0
/* ksurf lat FUNC: the entry program runs the probe's predicate (the interpreter's
 * ksurf_accept()) and, when it holds, stores the time and the aggregation key for the
 * current context (bpf/context.bpf.h: the thread, or the CPU and interrupt level); the
 * return program takes them back and adds the time since to the key's log2 histogram
 * (bpf/agg.bpf.h). A call that fails the predicate stores nothing, so its return costs one
 * load of `outstanding` while no call is in flight, else a lookup. Both are cloned per
 * probe with their own rodata, as bpf/probe.bpf.c is. */
#include "context.bpf.h"
#include "interp.bpf.h"

/* Context key → the key (cfg.agg.key_len bytes) then the entry time: the host sizes it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(key_size, 8);
	__uint(value_size, 8);
} starts SEC(".maps");

/* Set by the host when a predicate, -p or --cgroup can refuse calls. */
const volatile bool gated = false;

/* Starts stored and not yet taken back, counted only when `gated`: an upper bound (a start
 * a recursive call overwrote, or whose thread died first, is never taken back), so at 0
 * no start exists and a return needs neither the context key nor the lookup. When a
 * predicate refuses nearly every call, that is nearly every return: cheaper than the
 * lookup a bpftrace kretprobe makes to find its @start. The price, two atomic adds on one
 * shared line per accepted call, is paid only where calls are refused; without a
 * predicate every return finds a start and the count would buy nothing. */
__u64 outstanding = 0;

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
	if (bpf_map_update_elem(&starts, &key, s->data, BPF_ANY)) {
		s->counts[KSURF_STAT_LAT_LOST]++;
		return 0;
	}
	/* After the update: only this context's return takes this start back, and it runs
	 * after this program (on another CPU only after a migration, which orders memory). */
	if (gated)
		__sync_fetch_and_add(&outstanding, 1);
	s->counts[KSURF_STAT_LAT_STARTED]++;
	return 0;
}

/* Most returns are of calls the predicate refused: they cost one load while no call is in
 * flight, else the context key and one lookup; the clock is read only for a started call
 * (after that lookup, as a bpftrace kretprobe reads nsecs after its map's). */
SEC("raw_tp")
int ksurf_lat_return(void *ctx)
{
	__u8 context, *start;
	__u64 key, now;

	if (gated && !*(volatile __u64 *)&outstanding)
		return 0;
	key = context_key(&context);
	start = bpf_map_lookup_elem(&starts, &key);
	if (!start)
		return 0;
	now = bpf_ktime_get_ns();
	ksurf_agg_add(start, now - *(__u64 *)(start + cfg.agg.key_len));
	/* Only the return that deleted the start takes it off the count: never below the
	 * starts stored. */
	if (!bpf_map_delete_elem(&starts, &key) && gated)
		__sync_fetch_and_add(&outstanding, -1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
