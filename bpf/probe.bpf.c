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

char LICENSE[] SEC("license") = "GPL";
