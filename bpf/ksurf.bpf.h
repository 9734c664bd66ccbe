/* The first layer of ksurf's BPF code: the probe's configuration, the maps and the event
 * header every program shares, and the counters. Above it, bpf/pcap.bpf.h (packet access and
 * the classic BPF runner), then bpf/agg.bpf.h and bpf/interp.bpf.h; each header includes
 * the layers it uses. */
#ifndef KSURF_BPF_H
#define KSURF_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "ksurf/bpf_config.h"

/* The probe's configuration, frozen by the host before load: the verifier sees constants. */
const volatile struct ksurf_config cfg = {};

/* The host creates these once per run and hands them to every program instance with
 * bpf_map__reuse_fd(); it also sizes the ring buffer. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/* The thread groups -p names and -c starts (and, with -c, their children): key tgid. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KSURF_MAX_PIDS);
	__type(key, __u32);
	__type(value, __u8);
} pids SEC(".maps");

/* Events are assembled here rather than in a ring buffer reservation so that filtered
 * events never touch the ring buffer. */
struct ksurf_scratch {
	/* The per-CPU counters of enum ksurf_stat, first so that the host reads them without
	 * knowing the rest; here rather than in a map of their own, so that counting a
	 * rejected hit costs no second lookup. */
	__u64 counts[KSURF_STAT_MAX];
	struct ksurf_event ev;
	/* Slack for string searches, which the verifier bounds by KSURF_MAX_STR rather than
	 * by each field's capacity, and which compare a u64 at a time past the end. */
	__u8 data[KSURF_MAX_DATA + KSURF_MAX_STACK * 8 + KSURF_MAX_STR + 8];
	__u16 len[KSURF_MAX_FIELDS]; /* string fields' lengths, for the filter */
	__u64 stack;                 /* the filter's booleans */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ksurf_scratch);
} scratch SEC(".maps");

static __always_inline struct ksurf_scratch *ksurf_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&scratch, &zero);
}

/* Bumps counter WHICH of COUNTERS, an array of u64 (per-CPU or not): a plain XADD, which
 * every kernel takes. */
static __always_inline void ksurf_count(void *counters, __u32 which)
{
	__u64 *v = bpf_map_lookup_elem(counters, &which);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/* A kernel value of SIZE bytes (1, 2, 4, 8) at AT, zero-extended; 0 when unreadable. */
static __always_inline __u64 ksurf_read(__u64 at, __u32 size)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, size, (void *)at);
	return v;
}

/* The event's header, once the hit has passed the gates and the filter: a rejected hit
 * never reads the clock, its ids or comm. */
static __always_inline void ksurf_capture(struct ksurf_scratch *s, __u32 probe_id)
{
	__u64 id = bpf_get_current_pid_tgid();

	s->ev.pid = (__u32)id;
	s->ev.tgid = id >> 32;
	s->ev.ts_ns = bpf_ktime_get_ns();
	s->ev.probe_id = probe_id;
	s->ev.cpu = bpf_get_smp_processor_id();
	s->ev.data_len = 0;
	s->ev.stack_len = 0;
	bpf_get_current_comm(s->ev.comm, sizeof(s->ev.comm));
}

static __always_inline void ksurf_submit(struct ksurf_scratch *s, __u32 len)
{
	if (len > KSURF_MAX_DATA + KSURF_MAX_STACK * 8)
		len = KSURF_MAX_DATA + KSURF_MAX_STACK * 8;
	s->ev.data_len = len;
	if (bpf_ringbuf_output(&events, &s->ev, sizeof(s->ev) + len, 0))
		s->counts[KSURF_STAT_DROPPED]++;
}

#endif
