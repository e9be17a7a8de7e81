// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * CAMP XDP classifier.
 *
 * Rule: an Ethernet frame (optionally carrying one 802.1Q / 802.1ad tag)
 * holding an unfragmented IPv4 or IPv6 packet whose transport is UDP and
 * whose destination port is in `camp_ports`, and whose headers and UDP
 * length all lie inside the IP packet (IPv4 total length, IPv6 payload
 * length), is redirected to the AF_XDP socket registered in `xsks` for the
 * receiving queue. When no socket is registered for that queue the frame is
 * passed to the kernel. Everything
 * else (ARP, NDP/ICMPv6, other ports, fragments, malformed frames) is
 * passed, so the kernel keeps resolving neighbours and serving other
 * sockets.
 *
 * The Rust mirror of this rule is `camp_xdp::classify` (dataplane/xdp);
 * both are tested against each other with BPF_PROG_TEST_RUN.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_QUEUES 256
#define MAX_PORTS 64
#define MAX_LOCAL_ENDPOINTS 256
#define MAX_REMOTE_ENDPOINTS 4096
#define MAX_IPV6_EXT_HEADERS 4

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_DSTOPTS_ 60
#define IPPROTO_UDP_ 17

/* Indices into `global_stats`; mirrored by `GlobalCounter` in Rust. */
enum camp_global_counter {
	CAMP_STAT_PASS_OTHER = 0,   /* not CAMP traffic: passed to the kernel */
	CAMP_STAT_REDIRECTED = 1,   /* CAMP traffic handed to bpf_redirect_map */
	CAMP_STAT_PASS_NO_SOCKET = 2, /* CAMP traffic, no socket on this queue */
	CAMP_STAT_REDIRECT_FAIL = 3, /* bpf_redirect_map refused the frame */
	CAMP_STAT_PARSE_FAIL = 4,   /* malformed / truncated: passed */
	CAMP_STAT_MAX = 5,
};

struct camp_counter {
	__u64 packets;
	__u64 bytes;
};

/* An address + UDP port. IPv4 addresses are stored as ::ffff:a.b.c.d. */
struct camp_endpoint {
	__u8 addr[16];
	__u16 port; /* host byte order */
	__u16 pad;
};

/* Per endpoint (local or remote) telemetry; mirrored by `EndpointStats`. */
struct camp_endpoint_stats {
	__u64 packets;
	__u64 bytes;
	__u64 redirected;
	__u64 passed;
	__u64 redirect_failed;
	__u64 parse_failed;
};

/* UDP destination ports (host byte order) that belong to CAMP. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} camp_ports SEC(".maps");

/* rx_queue_index -> AF_XDP socket. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CAMP_STAT_MAX);
	__type(key, __u32);
	__type(value, struct camp_counter);
} global_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, MAX_LOCAL_ENDPOINTS);
	__type(key, struct camp_endpoint);
	__type(value, struct camp_endpoint_stats);
} local_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, MAX_REMOTE_ENDPOINTS);
	__type(key, struct camp_endpoint);
	__type(value, struct camp_endpoint_stats);
} remote_stats SEC(".maps");

struct vlan_hdr_ {
	__be16 tci;
	__be16 encap_proto;
};

struct ipv4_hdr_ {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6_hdr_ {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct ipv6_opt_hdr_ {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct udp_hdr_ {
	__be16 source;
	__be16 dest;
	__be16 len;
	__sum16 check;
};

/*
 * Parsing cursor, xdp-tools style: every step is bounds-checked against the
 * frame (for the verifier) and, past the IP header, against the IP packet
 * as its length field gives it: `ip_left` is what remains of the packet
 * from `pos` on. Bytes after the IP packet (Ethernet padding, or anything
 * a sender appends) are never parsed as headers: a header claiming them is
 * malformed, so the frame goes to the kernel and is counted
 * (CAMP_STAT_PARSE_FAIL) instead of reaching the AF_XDP socket, whose
 * receive parser (`camp_xdp::frame::parse_udp`) would refuse it.
 */
struct cursor {
	void *pos;
	void *end;
	__u32 ip_left;
};

static __always_inline void count_global(__u32 idx, __u64 bytes)
{
	struct camp_counter *c = bpf_map_lookup_elem(&global_stats, &idx);

	if (c) {
		c->packets += 1;
		c->bytes += bytes;
	}
}

static __always_inline struct camp_endpoint_stats *endpoint_stats(void *map, struct camp_endpoint *key)
{
	struct camp_endpoint_stats *s = bpf_map_lookup_elem(map, key);

	if (!s) {
		struct camp_endpoint_stats zero = {};

		bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(map, key);
	}
	return s;
}

enum ep_outcome { EP_REDIRECTED, EP_PASSED, EP_REDIRECT_FAILED, EP_PARSE_FAILED };

static __always_inline void count_endpoint(void *map, struct camp_endpoint *key, __u64 bytes,
					   enum ep_outcome outcome)
{
	struct camp_endpoint_stats *s = endpoint_stats(map, key);

	if (!s)
		return;
	s->packets += 1;
	s->bytes += bytes;
	switch (outcome) {
	case EP_REDIRECTED:
		s->redirected += 1;
		break;
	case EP_PASSED:
		s->passed += 1;
		break;
	case EP_REDIRECT_FAILED:
		s->redirect_failed += 1;
		break;
	case EP_PARSE_FAILED:
		s->parse_failed += 1;
		break;
	}
}

static __always_inline int parse_ethhdr(struct cursor *c, __u16 *proto)
{
	struct ethhdr *eth = c->pos;
	__u16 p;

	if ((void *)(eth + 1) > c->end)
		return -1;
	c->pos = eth + 1;
	p = bpf_ntohs(eth->h_proto);
	if (p == ETH_P_8021Q_ || p == ETH_P_8021AD_) {
		struct vlan_hdr_ *vh = c->pos;

		if ((void *)(vh + 1) > c->end)
			return -1;
		c->pos = vh + 1;
		p = bpf_ntohs(vh->encap_proto);
	}
	*proto = p;
	return 0;
}

/* Returns 1 for UDP, 0 for other (non-UDP, fragment), -1 for malformed. */
static __always_inline int parse_ipv4(struct cursor *c, struct camp_endpoint *local,
				      struct camp_endpoint *remote)
{
	struct ipv4_hdr_ *ip = c->pos;
	__u32 hlen, tot_len;

	if ((void *)(ip + 1) > c->end)
		return -1;
	if ((ip->ver_ihl >> 4) != 4)
		return -1;
	hlen = (ip->ver_ihl & 0x0f) * 4;
	if (hlen < sizeof(*ip))
		return -1;
	if (c->pos + hlen > c->end)
		return -1;
	/* more-fragments flag or non-zero offset: leave it to the kernel */
	if (ip->frag_off & bpf_htons(0x3fff))
		return 0;
	if (ip->protocol != IPPROTO_UDP_)
		return 0;
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < hlen || c->pos + tot_len > c->end)
		return -1;
	__builtin_memset(local, 0, sizeof(*local));
	__builtin_memset(remote, 0, sizeof(*remote));
	local->addr[10] = 0xff;
	local->addr[11] = 0xff;
	remote->addr[10] = 0xff;
	remote->addr[11] = 0xff;
	__builtin_memcpy(&local->addr[12], &ip->daddr, 4);
	__builtin_memcpy(&remote->addr[12], &ip->saddr, 4);
	c->pos += hlen;
	c->ip_left = tot_len - hlen;
	return 1;
}

static __always_inline int parse_ipv6(struct cursor *c, struct camp_endpoint *local,
				      struct camp_endpoint *remote)
{
	struct ipv6_hdr_ *ip6 = c->pos;
	__u32 payload_len, hlen;
	__u8 next;
	int i;

	if ((void *)(ip6 + 1) > c->end)
		return -1;
	if ((bpf_ntohl(ip6->ver_tc_flow) >> 28) != 6)
		return -1;
	payload_len = bpf_ntohs(ip6->payload_len);
	if ((void *)(ip6 + 1) + payload_len > c->end)
		return -1;
	c->ip_left = payload_len;
	__builtin_memset(local, 0, sizeof(*local));
	__builtin_memset(remote, 0, sizeof(*remote));
	__builtin_memcpy(local->addr, ip6->daddr, 16);
	__builtin_memcpy(remote->addr, ip6->saddr, 16);
	c->pos = ip6 + 1;
	next = ip6->nexthdr;

#pragma unroll
	for (i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
		struct ipv6_opt_hdr_ *oh = c->pos;

		if (next == IPPROTO_UDP_)
			return 1;
		if (next == IPPROTO_FRAGMENT_)
			return 0;
		if (next != IPPROTO_HOPOPTS_ && next != IPPROTO_ROUTING_ &&
		    next != IPPROTO_DSTOPTS_)
			return 0;
		if ((void *)(oh + 1) > c->end || c->ip_left < sizeof(*oh))
			return -1;
		next = oh->nexthdr;
		hlen = (oh->hdrlen + 1) * 8;
		if (c->pos + hlen > c->end || c->ip_left < hlen)
			return -1;
		c->pos += hlen;
		c->ip_left -= hlen;
	}
	return next == IPPROTO_UDP_ ? 1 : 0;
}

SEC("xdp")
int camp_classify(struct xdp_md *ctx)
{
	struct cursor c = {
		.pos = (void *)(long)ctx->data,
		.end = (void *)(long)ctx->data_end,
		.ip_left = 0,
	};
	__u64 bytes = c.end - c.pos;
	struct camp_endpoint local, remote;
	struct udp_hdr_ *udp;
	__u16 proto, dport, ulen;
	__u32 qid = ctx->rx_queue_index;
	int r;

	if (parse_ethhdr(&c, &proto) < 0) {
		count_global(CAMP_STAT_PARSE_FAIL, bytes);
		return XDP_PASS;
	}
	if (proto == ETH_P_IP_) {
		r = parse_ipv4(&c, &local, &remote);
	} else if (proto == ETH_P_IPV6_) {
		r = parse_ipv6(&c, &local, &remote);
	} else {
		count_global(CAMP_STAT_PASS_OTHER, bytes);
		return XDP_PASS;
	}
	if (r < 0) {
		count_global(CAMP_STAT_PARSE_FAIL, bytes);
		return XDP_PASS;
	}
	if (r == 0) {
		count_global(CAMP_STAT_PASS_OTHER, bytes);
		return XDP_PASS;
	}

	udp = c.pos;
	if ((void *)(udp + 1) > c.end || c.ip_left < sizeof(*udp)) {
		count_global(CAMP_STAT_PARSE_FAIL, bytes);
		return XDP_PASS;
	}
	dport = bpf_ntohs(udp->dest);
	if (!bpf_map_lookup_elem(&camp_ports, &dport)) {
		count_global(CAMP_STAT_PASS_OTHER, bytes);
		return XDP_PASS;
	}
	local.port = dport;
	remote.port = bpf_ntohs(udp->source);

	/* The UDP length must cover the header and fit in the IP packet. */
	ulen = bpf_ntohs(udp->len);
	if (ulen < sizeof(*udp) || ulen > c.ip_left) {
		count_global(CAMP_STAT_PARSE_FAIL, bytes);
		count_endpoint(&local_stats, &local, bytes, EP_PARSE_FAILED);
		count_endpoint(&remote_stats, &remote, bytes, EP_PARSE_FAILED);
		return XDP_PASS;
	}

	if (!bpf_map_lookup_elem(&xsks, &qid)) {
		count_global(CAMP_STAT_PASS_NO_SOCKET, bytes);
		count_endpoint(&local_stats, &local, bytes, EP_PASSED);
		count_endpoint(&remote_stats, &remote, bytes, EP_PASSED);
		return XDP_PASS;
	}
	r = bpf_redirect_map(&xsks, qid, XDP_PASS);
	if (r != XDP_REDIRECT) {
		count_global(CAMP_STAT_REDIRECT_FAIL, bytes);
		count_endpoint(&local_stats, &local, bytes, EP_REDIRECT_FAILED);
		count_endpoint(&remote_stats, &remote, bytes, EP_REDIRECT_FAILED);
		return r;
	}
	count_global(CAMP_STAT_REDIRECTED, bytes);
	count_endpoint(&local_stats, &local, bytes, EP_REDIRECTED);
	count_endpoint(&remote_stats, &remote, bytes, EP_REDIRECTED);
	return XDP_REDIRECT;
}

char LICENSE[] SEC("license") = "MIT OR Apache-2.0";
