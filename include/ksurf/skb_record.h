/* Records and rodata of `ksurf skb` (bpf/skb.bpf.c), shared with the host. Plain
 * __u8..__u64 only: compiled by clang -target bpf and by g++. */
#ifndef KSURF_SKB_RECORD_H
#define KSURF_SKB_RECORD_H

#include "ksurf/event.h"

/* Bytes copied from a packet's network header: an IPv4 header with options or an IPv6
 * header, and the first 16 bytes after it (ports, TCP flags, ICMP type and code). */
#define KSURF_SKB_NET 80
#define KSURF_IFNAME_LEN 16

enum ksurf_skb_kind {
	KSURF_SKB_CALL = 0, /* a function entered with a followed skb */
	KSURF_SKB_RETURN,   /* that call returned: `value` is its return value */
	KSURF_SKB_CLONE,    /* skb_clone() of a followed skb: `value` is the clone */
	KSURF_SKB_FREE,     /* the skb's memory is released: no longer followed */
};

struct ksurf_skb_rec {
	__u64 ts_ns;
	__u64 skb;
	__u64 ip;       /* an address inside the function (its entry, or the probe's); 0 for a CLONE */
	__u64 value;
	__u32 pid;
	__u32 tgid;
	__u32 len;      /* skb->len */
	__u32 ifindex;  /* skb->dev's; 0 without a device */
	__u16 cpu;
	__u8 kind;      /* enum ksurf_skb_kind */
	__u8 first;     /* CALL: the packet matched here, and is followed from here on */
	__u16 net_len;  /* bytes of net[] that are the packet's */
	__u16 pad;
	char comm[KSURF_COMM_LEN];
	char ifname[KSURF_IFNAME_LEN];
	__u8 net[KSURF_SKB_NET];
};

/* Per-CPU counters of the skb programs, summed by the host (after ksurf_stat's). */
enum ksurf_skb_count {
	KSURF_SKB_HITS = 0,  /* probe hits on any skb */
	KSURF_SKB_MATCHED,   /* skbs the filter accepted: followed from then on */
	KSURF_SKB_DROPPED,   /* records lost: ring buffer full */
	KSURF_SKB_COUNT_MAX,
};

struct ksurf_skb_config {
	__u8 returns;   /* record RETURNs: the entries leave what the return probe needs */
	__u8 pad[7];
};

#endif
