// SPDX-License-Identifier: GPL-2.0
/* One program for every attach type, running the interpreter. The host loads it once as a
 * raw_tp (the one type that needs no target at load) and clones its relocated instructions
 * per probe, with the probe's own rodata and program type (src/attach): fentry/fexit,
 * kprobes and tracepoints run the same code. What differs between their contexts the host
 * has turned into offsets; what differs in the helpers they may call is behind rodata
 * constants, so the verifier never walks a call the type does not allow. */
#include "interp.bpf.h"

SEC("raw_tp")
int ksurf_probe(void *ctx)
{
	/* kprobe.multi: many functions share one config; each one's probe id is its cookie. */
	return ksurf_run(ctx, cfg.id_from_cookie ? bpf_get_attach_cookie(ctx) : cfg.probe_id);
}

/* -c: a process forked by a traced one is traced too (threads share the tgid already).
 * The parent is current when the tracepoint fires; args[1] is the child. */
SEC("raw_tp/sched_process_fork")
int ksurf_follow_fork(__u64 *args)
{
	__u32 parent = bpf_get_current_pid_tgid() >> 32;
	__u32 tgid = ksurf_read(args[1] + cfg.layout.task_tgid, 4);
	__u8 one = 1;

	if (bpf_map_lookup_elem(&pids, &parent))
		bpf_map_update_elem(&pids, &tgid, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
