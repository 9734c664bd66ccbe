/* Packet access, the second layer (on bpf/ksurf.bpf.h): an sk_buff's headers, and --pcap in
 * the kernel: the classic BPF program libpcap compiled (src/pcap/compile.cpp), run over the
 * packet of the probe's sk_buff from its network header (DLT_RAW), and -w's copy of the
 * packet bytes. `ksurf skb` uses this layer alone; the interpreter builds on it.
 *
 * The program sits in rodata (cfg.cbpf), so every opcode, jump offset and constant is
 * known to the verifier. The interpreter is unrolled over the KSURF_MAX_CBPF slots; slot i
 * runs only when the program counter is i. Classic BPF jumps only forward, so one pass
 * over the slots executes any program. The machine state (A, X, M[], the program counter,
 * the verdict) lives in map memory, which the verifier does not track: after each slot,
 * "ran" and "skipped" are the same verifier state and are pruned into one, so verifying
 * costs the sum of the slots, not the number of paths through the program. */
#ifndef KSURF_PCAP_BPF_H
#define KSURF_PCAP_BPF_H

#include "ksurf.bpf.h"
#include <bpf/bpf_endian.h>

/* The address of the header at LAYER of the sk_buff at SKB, or 0 when the skb has none
 * set (~0). The offsets move between kernels: the host reads them from BTF. */
static __always_inline __u64 ksurf_packet(__u64 skb, __u8 layer)
{
	__u16 off;

	if (layer == 2)
		off = ksurf_read(skb + cfg.layout.skb_mac_header, 2);
	else if (layer == 3)
		off = ksurf_read(skb + cfg.layout.skb_network_header, 2);
	else
		off = ksurf_read(skb + cfg.layout.skb_transport_header, 2);
	if (off == (__u16)~0U)
		return 0;
	return ksurf_read(skb + cfg.layout.skb_head, 8) + off;
}

/* Opcode fields, from linux/filter.h (the UAPI header clashes with vmlinux.h). */
#define KSURF_CBPF_CLASS(c) ((c) & 0x07)
#define KSURF_CBPF_SIZE(c) ((c) & 0x18)
#define KSURF_CBPF_MODE(c) ((c) & 0xe0)
#define KSURF_CBPF_OP(c) ((c) & 0xf0)
#define KSURF_CBPF_SRC(c) ((c) & 0x08)
#define KSURF_CBPF_RVAL(c) ((c) & 0x18)
#define KSURF_CBPF_DONE 0xffff /* a pc no slot has: the program returned */

struct ksurf_cbpf_state {
	__u64 pkt;   /* the network header */
	__u32 len;   /* bytes of it in the linear buffer: loads past them reject */
	__u32 wire;  /* the packet's length from the network header (BPF_LEN) */
	__u32 a;
	__u32 x;
	__u32 pc;
	__u32 verdict;
	__u32 m[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ksurf_cbpf_state);
} ksurf_cbpf_states SEC(".maps");

/* The network header of SKB and how many bytes of the packet it starts; 0 when the skb
 * has no network header (yet). */
static __always_inline int ksurf_cbpf_packet(struct ksurf_cbpf_state *st, __u64 skb)
{
	const volatile struct ksurf_layout *l = &cfg.layout;
	__u64 pkt = ksurf_packet(skb, 3), end;

	if (!pkt)
		return 0;
	end = ksurf_read(skb + l->skb_head, 8) + ksurf_read(skb + l->skb_tail, 4);
	st->pkt = pkt;
	st->len = end > pkt && end - pkt < 0xffff ? end - pkt : 0;
	/* skb->len counts from skb->data, which is after the network header on receive
	 * (pulled) and at it on transmit. */
	st->wire = ksurf_read(skb + l->skb_len, 4) + (ksurf_read(skb + l->skb_data, 8) - pkt);
	return st->len != 0;
}

/* A big-endian load of SIZE (1, 2, 4) bytes at OFF; 0 when the packet is shorter. */
static __always_inline int ksurf_cbpf_load(struct ksurf_cbpf_state *st, __u32 off, __u32 size, __u32 *out)
{
	__u32 v = 0;

	if (off > st->len || size > st->len - off)
		return 0;
	bpf_probe_read_kernel(&v, size, (void *)(st->pkt + off));
	*out = size == 4 ? bpf_ntohl(v) : size == 2 ? bpf_ntohs((__u16)v) : v;
	return 1;
}

/* Runs slot I: the next pc, or KSURF_CBPF_DONE with the verdict. A subprogram: the verifier
 * still checks each call with its constant I, but the program holds its code once rather
 * than once per slot, which is most of what every load of the program copies and scans. */
static __noinline int ksurf_cbpf_step(struct ksurf_cbpf_state *st, __u32 i)
{
	const volatile struct ksurf_cbpf *in = &cfg.cbpf[i];
	__u16 code = in->code;
	__u32 k = in->k, src, size, v, off;

	st->pc = i + 1;
	switch (KSURF_CBPF_CLASS(code)) {
	case 0x00: /* BPF_LD */
	case 0x01: /* BPF_LDX */
		size = KSURF_CBPF_SIZE(code) == 0x00 ? 4 : KSURF_CBPF_SIZE(code) == 0x08 ? 2 : 1;
		switch (KSURF_CBPF_MODE(code)) {
		case 0x00: v = k; break;                /* IMM */
		case 0x60: v = st->m[k & 15]; break;    /* MEM */
		case 0x80: v = st->wire; break;         /* LEN */
		case 0x20:                              /* ABS */
		case 0x40:                              /* IND */
			off = KSURF_CBPF_MODE(code) == 0x40 ? st->x + k : k;
			if (!ksurf_cbpf_load(st, off, size, &v))
				goto reject;
			break;
		case 0xa0:                              /* MSH: 4 * (P[k] & 0xf) */
			if (!ksurf_cbpf_load(st, k, 1, &v))
				goto reject;
			v = (v & 0xf) << 2;
			break;
		default:
			goto reject;
		}
		if (KSURF_CBPF_CLASS(code) == 0x00)
			st->a = v;
		else
			st->x = v;
		return 0;
	case 0x02: /* BPF_ST */
		st->m[k & 15] = st->a;
		return 0;
	case 0x03: /* BPF_STX */
		st->m[k & 15] = st->x;
		return 0;
	case 0x04: /* BPF_ALU */
		src = KSURF_CBPF_SRC(code) ? st->x : k;
		switch (KSURF_CBPF_OP(code)) {
		case 0x00: st->a += src; break;
		case 0x10: st->a -= src; break;
		case 0x20: st->a *= src; break;
		case 0x30:
			if (!src)
				goto reject;
			st->a /= src;
			break;
		case 0x40: st->a |= src; break;
		case 0x50: st->a &= src; break;
		case 0x60: st->a = src < 32 ? st->a << src : 0; break;
		case 0x70: st->a = src < 32 ? st->a >> src : 0; break;
		case 0x80: st->a = -st->a; break;
		case 0x90:
			if (!src)
				goto reject;
			st->a %= src;
			break;
		case 0xa0: st->a ^= src; break;
		default: goto reject;
		}
		return 0;
	case 0x05: /* BPF_JMP: forward only, by construction of the format */
		src = KSURF_CBPF_SRC(code) ? st->x : k;
		switch (KSURF_CBPF_OP(code)) {
		case 0x00: st->pc = i + 1 + k; return 0;  /* JA */
		case 0x10: v = st->a == src; break;
		case 0x20: v = st->a > src; break;
		case 0x30: v = st->a >= src; break;
		case 0x40: v = (st->a & src) != 0; break;
		default: goto reject;
		}
		st->pc = i + 1 + (v ? in->jt : in->jf);
		return 0;
	case 0x06: /* BPF_RET */
		st->verdict = KSURF_CBPF_RVAL(code) == 0x10 ? st->a : KSURF_CBPF_RVAL(code) == 0x08 ? st->x : k;
		st->pc = KSURF_CBPF_DONE;
		return 0;
	case 0x07: /* BPF_MISC */
		if ((code & 0xf8) == 0x80)
			st->a = st->x;  /* TXA */
		else
			st->x = st->a;  /* TAX */
		return 0;
	}
reject:
	st->verdict = 0;
	st->pc = KSURF_CBPF_DONE;
	return 0;
}

/* The sk_buff the program reads: the filter field the host named, fetched before. */
static __always_inline __u64 ksurf_pcap_skb(struct ksurf_scratch *s)
{
	return *(__u64 *)(s->data + cfg.fields[cfg.pcap_field].out);
}

/* Whether --pcap's program accepts the packet of the sk_buff at SKB; true without a
 * program. */
static __always_inline int ksurf_cbpf_accepts(__u64 skb)
{
	__u32 zero = 0;
	struct ksurf_cbpf_state *st;

	if (!cfg.ncbpf)
		return 1;
	st = bpf_map_lookup_elem(&ksurf_cbpf_states, &zero);
	if (!st || !ksurf_cbpf_packet(st, skb))
		return 0;
	st->a = 0;
	st->x = 0;
	st->pc = 0;
	st->verdict = 0;
#pragma unroll
	for (int i = 0; i < KSURF_MAX_CBPF; i++) {
		if (i >= cfg.ncbpf)
			break;
		if (st->pc == i)
			ksurf_cbpf_step(st, i);
	}
	return st->verdict != 0;
}

static __always_inline int ksurf_pcap(struct ksurf_scratch *s)
{
	return ksurf_cbpf_accepts(ksurf_pcap_skb(s));
}

/* -w: the packet from its network header into the payload at pkt_out: its wire length,
 * the number of bytes copied (at most snaplen, within the linear buffer), the bytes. */
static __always_inline void ksurf_pcap_copy(struct ksurf_scratch *s)
{
	__u32 zero = 0, n;
	struct ksurf_cbpf_state *st;
	__u32 *hdr = (__u32 *)(s->data + cfg.pkt_out);

	hdr[0] = 0;
	hdr[1] = 0;
	st = bpf_map_lookup_elem(&ksurf_cbpf_states, &zero);
	if (!st || !ksurf_cbpf_packet(st, ksurf_pcap_skb(s)))
		return;
	/* The host keeps pkt_out + 8 + snaplen within the payload. */
	n = st->len;
	if (n > cfg.snaplen)
		n = cfg.snaplen;
	if (bpf_probe_read_kernel(s->data + cfg.pkt_out + 8, n, (void *)st->pkt))
		return;
	hdr[0] = st->wire;
	hdr[1] = n;
}

#endif
