// SPDX-License-Identifier: GPL-2.0
/* `ksurf skb`: packet paths. One program per position of the sk_buff argument sits on
 * every function taking one. A hit on an skb not followed yet runs --pcap's program (the
 * interpreter of pcap.bpf.h over the packet from its network header); once it accepts, the
 * skb's address is followed: every later hit records the function without filtering again,
 * wherever the headers are by then (NAT, tunnels, a freshly pushed header). skb_clone()
 * passes the mark on to the clone; the functions that release an skb's memory end it, so
 * a reused address is not mistaken for the packet. */
#include "pcap.bpf.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "ksurf/skb_record.h"

const volatile struct ksurf_skb_config scfg = {};

/* Followed skbs by address. LRU: a free the programs did not see (a path ksurf does not
 * probe) must not fill the table for good. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} followed SEC(".maps");

/* A followed call in progress, for its return probe: by thread and function. */
struct call_key {
	__u64 tid;
	__u64 ip;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct call_key);
	__type(value, __u64);
} calls SEC(".maps");

/* skb_clone() of a followed skb in progress: by thread, the original. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} clones SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KSURF_SKB_COUNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} skb_counts SEC(".maps");

/* The record of a hit: who, where, the device and the packet's first bytes. */
static __always_inline void emit(__u8 kind, __u64 skb, __u64 ip, __u64 value, __u8 first)
{
	struct ksurf_skb_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	struct sk_buff *p = (void *)skb;
	struct net_device *dev;
	__u64 id = bpf_get_current_pid_tgid(), nh, end;

	if (!r) {
		ksurf_count(&skb_counts, KSURF_SKB_DROPPED);
		return;
	}
	r->ts_ns = bpf_ktime_get_ns();
	r->skb = skb;
	r->ip = ip;
	r->value = value;
	r->pid = (__u32)id;
	r->tgid = id >> 32;
	r->cpu = bpf_get_smp_processor_id();
	r->kind = kind;
	r->first = first;
	r->pad = 0;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	r->len = BPF_CORE_READ(p, len);
	dev = BPF_CORE_READ(p, dev);
	r->ifindex = dev ? BPF_CORE_READ(dev, ifindex) : 0;
	if (!dev || bpf_probe_read_kernel_str(r->ifname, sizeof(r->ifname), dev->name) < 0)
		r->ifname[0] = 0;
	r->net_len = 0;
	/* Before the IP layer builds its header (early on transmit), network_header is unset
	 * or 0, which points at headroom, not at a packet. */
	nh = BPF_CORE_READ(p, network_header) ? ksurf_packet(skb, 3) : 0;
	end = (__u64)BPF_CORE_READ(p, head) + BPF_CORE_READ(p, tail);
	if (nh && end > nh && !bpf_probe_read_kernel(r->net, sizeof(r->net), (void *)nh))
		r->net_len = end - nh < KSURF_SKB_NET ? end - nh : KSURF_SKB_NET;
	bpf_ringbuf_submit(r, 0);
}

/* A probed function entered with SKB: record it if the skb is followed or starts to be. */
static __always_inline int hop(__u64 skb, __u64 ip)
{
	__u8 one = 1, first = 0;

	ksurf_count(&skb_counts, KSURF_SKB_HITS);
	if (!skb)
		return 0;
	if (!bpf_map_lookup_elem(&followed, &skb)) {
		if (!ksurf_cbpf_accepts(skb))
			return 0;
		bpf_map_update_elem(&followed, &skb, &one, BPF_ANY);
		ksurf_count(&skb_counts, KSURF_SKB_MATCHED);
		first = 1;
	}
	emit(KSURF_SKB_CALL, skb, ip, 0, first);
	if (scfg.returns) {
		struct call_key k = {bpf_get_current_pid_tgid(), ip};

		bpf_map_update_elem(&calls, &k, &skb, BPF_ANY);
	}
	return 0;
}

/* The return of a call hop() recorded. */
static __always_inline int hop_return(__u64 ip, __u64 ret)
{
	struct call_key k = {bpf_get_current_pid_tgid(), ip};
	__u64 *skb = bpf_map_lookup_elem(&calls, &k);

	if (!skb)
		return 0;
	emit(KSURF_SKB_RETURN, *skb, ip, ret, 0);
	bpf_map_delete_elem(&calls, &k);
	return 0;
}

/* kprobe.multi: the function's address from the kernel, the same at entry and return. */
#define SKB_MULTI(n, ARG)                                                      \
	SEC("kprobe.multi")                                                    \
	int skb_multi_arg##n(struct pt_regs *ctx)                              \
	{                                                                      \
		return hop(ARG(ctx), bpf_get_func_ip(ctx));                    \
	}
/* kprobes, one link per function: 5.10 has neither cookies nor bpf_get_func_ip there,
 * but the trap's address is in the function (the host symbolizes it). No return probes:
 * their address is the caller's. */
#define SKB_KPROBE(n, ARG)                                                     \
	SEC("kprobe")                                                          \
	int skb_kprobe_arg##n(struct pt_regs *ctx)                             \
	{                                                                      \
		return hop(ARG(ctx), PT_REGS_IP(ctx) - 1);                     \
	}
#define SKB_PROGRAMS(n, ARG) SKB_MULTI(n, ARG) SKB_KPROBE(n, ARG)
SKB_PROGRAMS(0, PT_REGS_PARM1)
SKB_PROGRAMS(1, PT_REGS_PARM2)
SKB_PROGRAMS(2, PT_REGS_PARM3)
SKB_PROGRAMS(3, PT_REGS_PARM4)
SKB_PROGRAMS(4, PT_REGS_PARM5)

SEC("kretprobe.multi")
int skb_multi_return(struct pt_regs *ctx)
{
	return hop_return(bpf_get_func_ip(ctx), PT_REGS_RC(ctx));
}

/* skb_clone(skb, gfp): the clone of a followed skb is the same packet. */
SEC("kprobe")
int skb_clone_entry(struct pt_regs *ctx)
{
	__u64 skb = PT_REGS_PARM1(ctx), tid = bpf_get_current_pid_tgid();

	if (bpf_map_lookup_elem(&followed, &skb))
		bpf_map_update_elem(&clones, &tid, &skb, BPF_ANY);
	return 0;
}

SEC("kretprobe")
int skb_clone_return(struct pt_regs *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid(), clone = PT_REGS_RC(ctx);
	__u64 *skb = bpf_map_lookup_elem(&clones, &tid);
	__u8 one = 1;

	if (!skb)
		return 0;
	if (clone) {
		bpf_map_update_elem(&followed, &clone, &one, BPF_ANY);
		emit(KSURF_SKB_CLONE, *skb, 0, clone, 0);
	}
	bpf_map_delete_elem(&clones, &tid);
	return 0;
}

/* kfree_skbmem() and the others that hand an skb's memory back (the host picks those the
 * kernel has): the path ends, and the address may come back as another packet. */
SEC("kprobe")
int skb_free(struct pt_regs *ctx)
{
	__u64 skb = PT_REGS_PARM1(ctx);

	if (!bpf_map_lookup_elem(&followed, &skb))
		return 0;
	emit(KSURF_SKB_FREE, skb, PT_REGS_IP(ctx) - 1, 0, 0);
	bpf_map_delete_elem(&followed, &skb);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
