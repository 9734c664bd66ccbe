// SPDX-License-Identifier: GPL-2.0
/* One program per attach type, all running the same interpreter. The host loads exactly
 * one of them per instance; the context layout each type implies is encoded in the
 * rodata config as offsets (fentry/fexit: the u64 argument array; kprobes: struct pt_regs;
 * tracepoints: the record). */
#include "interp.bpf.h"

SEC("fentry")
int ksurf_fentry(void *ctx)
{
	return ksurf_run(ctx, cfg.probe_id);
}

SEC("fexit")
int ksurf_fexit(void *ctx)
{
	return ksurf_run(ctx, cfg.probe_id);
}

/* kretprobes too: the return flag is an attach option, not a program type. */
SEC("kprobe")
int ksurf_kprobe(void *ctx)
{
	return ksurf_run(ctx, cfg.probe_id);
}

/* Many functions share one config; each one's probe id is its attach cookie. */
SEC("kprobe.multi")
int ksurf_kprobe_multi(void *ctx)
{
	return ksurf_run(ctx, bpf_get_attach_cookie(ctx));
}

SEC("tracepoint")
int ksurf_tp(void *ctx)
{
	return ksurf_run(ctx, cfg.probe_id);
}

/* e probes whose fields are TP_PROTO arguments: the context is their u64 array, as for
 * fentry; tp_btf reads it directly, raw_tp (no BTF attach) the same way. */
SEC("tp_btf")
int ksurf_tp_btf(void *ctx)
{
	return ksurf_run(ctx, cfg.probe_id);
}

SEC("raw_tp")
int ksurf_raw_tp(void *ctx)
{
	return ksurf_run(ctx, cfg.probe_id);
}

/* -c: a process forked by a traced one is traced too (threads share the tgid already).
 * The parent is current when the tracepoint fires. */
SEC("raw_tp/sched_process_fork")
int ksurf_follow_fork(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 parent = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *child = (void *)ctx->args[1];
	__u32 tgid = BPF_CORE_READ(child, tgid);
	__u8 one = 1;

	if (bpf_map_lookup_elem(&pids, &parent))
		bpf_map_update_elem(&pids, &tgid, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
