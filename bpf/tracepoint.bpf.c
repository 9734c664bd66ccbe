// SPDX-License-Identifier: GPL-2.0
/* Generic tracepoint program: copies the event's raw record (the layout its tracefs
 * `format` file describes) so the host can decode any tracepoint's own fields. */
#include "ksurf.bpf.h"

const volatile __u32 probe_id = 0;
/* Bytes of the record to copy: fixed fields plus room for __data_loc payloads. */
const volatile __u32 record_size = 0;

SEC("tracepoint")
int ksurf_tp(void *ctx)
{
	struct ksurf_scratch *s = ksurf_begin(probe_id);
	__u32 n = record_size;

	if (!s)
		return 0;
	if (n > KSURF_MAX_DATA)
		n = KSURF_MAX_DATA;
	/* Reading past a short record only returns bytes of the same per-CPU trace buffer;
	 * the host decodes strictly within the offsets the record itself gives. */
	if (bpf_probe_read_kernel(s->data, n, ctx))
		return 0;
	s->ev.data_len = n;
	ksurf_submit(s);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
