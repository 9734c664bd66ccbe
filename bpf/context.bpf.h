/* The execution context a program runs in, for pairing what happens in it (call graphs,
 * latencies): the task, or in interrupt context the CPU with its preempt_count interrupt
 * bits. Needs CO-RE and, where BTF has no per-CPU variables, the kallsyms addresses in
 * `gcfg`, which the call-graph recorder also configures itself with. */
#ifndef KSURF_CONTEXT_BPF_H
#define KSURF_CONTEXT_BPF_H

#include "ksurf.bpf.h"
#include <bpf/bpf_core_read.h>
#include "ksurf/graph_record.h"

const volatile struct ksurf_graph_config gcfg = {};

/* preempt_count lives in the per-CPU struct pcpu_hot from 6.2 to 6.14, in the per-CPU int
 * __preempt_count before and after. Both are weak: the one the kernel lacks resolves to
 * nothing, and the CO-RE check makes its branch dead code the verifier never walks. Where
 * BTF has no per-CPU variables (Debian's 5.10), the host passes __preempt_count's and
 * __per_cpu_offset's addresses from kallsyms, and this reads the CPU's copy by hand. */
struct pcpu_hot {
	int preempt_count;
} __attribute__((preserve_access_index));
extern const struct pcpu_hot pcpu_hot __ksym __weak;
extern const int __preempt_count __ksym __weak;

#define KSURF_SOFTIRQ_OFFSET (1U << 8)
#define KSURF_HARDIRQ_MASK (0xfU << 16)
#define KSURF_NMI_MASK (0xfU << 20)

static __always_inline __u32 preempt_bits(void)
{
	__u64 base = 0;
	int count = 0;

	/* A typed per-CPU pointer is read directly (the verifier checks the field against BTF):
	 * no probe-read helper call on every hit of graph and lat. */
	if (bpf_core_type_exists(struct pcpu_hot))
		return ((const struct pcpu_hot *)bpf_this_cpu_ptr(&pcpu_hot))->preempt_count;
	if (&__preempt_count)
		return *(const int *)bpf_this_cpu_ptr(&__preempt_count);
	bpf_probe_read_kernel(&base, sizeof(base), (const void *)(gcfg.per_cpu_offset + 8 * bpf_get_smp_processor_id()));
	bpf_probe_read_kernel(&count, sizeof(count), (const void *)(base + gcfg.preempt_count));
	return count;
}

/* The key of the current context: the thread id in task context (a task may migrate), the
 * CPU and the interrupt nesting bits otherwise (an interrupt does not). */
static __always_inline __u64 context_key(__u8 *context)
{
	__u32 irq = preempt_bits() & (KSURF_NMI_MASK | KSURF_HARDIRQ_MASK | KSURF_SOFTIRQ_OFFSET);

	if (!irq) {
		*context = KSURF_CTX_TASK;
		return (__u32)bpf_get_current_pid_tgid();
	}
	*context = irq & KSURF_NMI_MASK ? KSURF_CTX_NMI : irq & KSURF_HARDIRQ_MASK ? KSURF_CTX_HARDIRQ : KSURF_CTX_SOFTIRQ;
	return 1ULL << 63 | (__u64)bpf_get_smp_processor_id() << 32 | irq;
}

#endif
