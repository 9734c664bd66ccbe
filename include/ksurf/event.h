/* Records shared by the BPF programs and the host. Plain __u32/__u64 only: this header is
 * compiled both by clang -target bpf (against vmlinux.h) and by g++ (against linux/types.h). */
#ifndef KSURF_EVENT_H
#define KSURF_EVENT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define KSURF_COMM_LEN 16
/* Upper bound of the payload one event carries: 16 fields of which a few are strings, or
 * any tracepoint record the tracers commonly look at. */
#define KSURF_MAX_DATA 4096
/* Kernel return addresses one event carries with -s. */
#define KSURF_MAX_STACK 64

/* Header of one record in the BPF ring buffer; `data_len` bytes of payload follow it. */
struct ksurf_event {
	__u64 ts_ns;     /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 probe_id;  /* index of the probe in the run */
	__u32 pid;       /* thread id */
	__u32 tgid;      /* process id */
	__u32 cpu;
	__u32 data_len;  /* bytes after this header: the payload, then the stack */
	__u32 stack_len; /* -s: bytes of kernel return addresses ending the data, innermost
			  * first, from an 8-byte boundary */
	char comm[KSURF_COMM_LEN];
};

/* Per-CPU counters every program keeps, summed by the host at exit. */
enum ksurf_stat {
	KSURF_STAT_HITS = 0,     /* program invocations */
	KSURF_STAT_FILTERED,     /* rejected by the in-kernel filter */
	KSURF_STAT_DROPPED,      /* ring buffer full */
	KSURF_STAT_AGG_FULL,     /* aggregation: a new key found the map full */
	KSURF_STAT_LAT_STARTED,  /* ksurf lat: calls whose entry was accepted and stored */
	KSURF_STAT_LAT_LOST,     /* ksurf lat: entries the context map had no room for */
	KSURF_STAT_MAX,
};

#endif
