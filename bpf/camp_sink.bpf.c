// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Counting XDP drop program for benchmarks and tests: attached to the peer
 * of a link under test, it counts and drops every frame, so a transmit
 * measurement is not dominated by the receiver's network stack.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sink_count SEC(".maps");

SEC("xdp")
int camp_sink(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *c = bpf_map_lookup_elem(&sink_count, &key);

	if (c)
		*c += 1;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "MIT OR Apache-2.0";
