// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * CAMP engine steering for the kernel-UDP fallback: an SO_REUSEPORT group of
 * one UDP socket per engine, and this program choosing the socket of a
 * datagram by the engine encoded in its QUIC destination connection id.
 *
 * Server-chosen CIDs follow the plaintext QUIC-LB layout
 * (draft-ietf-quic-load-balancers): one octet of config rotation bits, then
 * the server id, whose last octet is the engine (camp_proto::cid). A
 * datagram whose first packet's DCID has the site's length and config
 * rotation bits goes to the socket of engine `dcid[engine_offset]` when that
 * engine has a socket; every other datagram (a client's first Initial with a
 * random DCID, a foreign CID, a truncated packet, an engine number out of
 * range) is left to the kernel's 4-tuple hash, which keeps a connection's
 * Initials on one socket until the client adopts the server's CID.
 *
 * The Rust side is camp_xdp::steer; its netns test checks both cases.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_ENGINES 64
#define MAX_CID_LEN 20
#define UDP_HEADER_LEN 8

struct steer_config {
	__u32 cid_len;       /* octets of every server-chosen CID */
	__u32 config_id;     /* rotation bits (0..6) of the live configuration */
	__u32 engine_offset; /* octet of the CID holding the engine number */
	__u32 engines;       /* sockets registered, engine 0..engines-1 */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct steer_config);
} steer_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, MAX_ENGINES);
	__type(key, __u32);
	__type(value, __u64);
} engine_socks SEC(".maps");

/* [0]: steered by CID, [1]: left to the hash, [2]: steering refused. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} steer_stats SEC(".maps");

static __always_inline void count(__u32 i)
{
	__u64 *c = bpf_map_lookup_elem(&steer_stats, &i);
	if (c)
		*c += 1;
}

SEC("sk_reuseport")
int camp_steer(struct sk_reuseport_md *ctx)
{
	__u32 zero = 0;
	struct steer_config *cfg = bpf_map_lookup_elem(&steer_config, &zero);
	__u8 first;
	__u8 dcid_len;
	__u32 dcid_at;
	__u8 octet0;
	__u8 engine_octet;
	__u32 engine;

	if (!cfg || cfg->cid_len == 0 || cfg->cid_len > MAX_CID_LEN ||
	    cfg->engine_offset >= cfg->cid_len)
		goto hash;
	/* ctx->data starts at the UDP header. */
	if (bpf_skb_load_bytes(ctx, UDP_HEADER_LEN, &first, 1))
		goto hash;
	if (first & 0x80) {
		/* Long header: flags, 4-octet version, DCID length, DCID. */
		if (bpf_skb_load_bytes(ctx, UDP_HEADER_LEN + 5, &dcid_len, 1))
			goto hash;
		if (dcid_len != cfg->cid_len)
			goto hash;
		dcid_at = UDP_HEADER_LEN + 6;
	} else {
		dcid_at = UDP_HEADER_LEN + 1;
	}
	if (bpf_skb_load_bytes(ctx, dcid_at, &octet0, 1))
		goto hash;
	if ((octet0 >> 5) != cfg->config_id)
		goto hash;
	if (bpf_skb_load_bytes(ctx, dcid_at + (cfg->engine_offset & 31),
			       &engine_octet, 1))
		goto hash;
	engine = engine_octet;
	if (engine >= cfg->engines || engine >= MAX_ENGINES)
		goto hash;
	if (bpf_sk_select_reuseport(ctx, &engine_socks, &engine, 0) == 0) {
		count(0);
		return SK_PASS;
	}
	count(2);
	return SK_PASS;
hash:
	count(1);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "MIT OR Apache-2.0";
