// SPDX-License-Identifier: GPL-2.0
/* Trial programs for `ksurf features`: the host enables exactly one per load, so each
 * attach type is judged by the kernel itself (load + attach), never by version numbers. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* vfs_read and sched_switch exist and are traceable on every kernel ksurf supports. */
SEC("fentry/vfs_read")
int BPF_PROG(trial_fentry)
{
	return 0;
}

SEC("fexit/vfs_read")
int BPF_PROG(trial_fexit)
{
	return 0;
}

SEC("kprobe/vfs_read")
int trial_kprobe(void *ctx)
{
	return 0;
}

SEC("kprobe.multi/vfs_read")
int trial_kprobe_multi(void *ctx)
{
	return 0;
}

SEC("tp_btf/sched_switch")
int trial_tp_btf(void *ctx)
{
	return 0;
}

SEC("raw_tp/sched_switch")
int trial_raw_tp(void *ctx)
{
	return 0;
}

SEC("tracepoint/sched/sched_switch")
int trial_tracepoint(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
