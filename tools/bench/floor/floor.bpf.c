// SPDX-License-Identifier: GPL-2.0
/* The floor of recording cost: programs that do nothing, attached as an entry uprobe
 * and a return uprobe on exactly the functions and offsets heaptrail-record probes.
 * What a traced program pays under them is the price of the traps alone. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("uprobe")
int floor_entry(void *ctx)
{
	return 0;
}

SEC("uretprobe")
int floor_return(void *ctx)
{
	return 0;
}

/* --parts: the building blocks of heaptrail's programs, each alone in its own program
 * so that BPF statistics (kernel.bpf_stats_enabled) time each one: the per-thread hash
 * entry that pairs a call with its return, the user stack capture, the ring output. */
#define PART_STACK_BYTES (64 * 8) /* heaptrail-record's default --stack-depth */

struct part_event {
	__u64 header[5];
	__u64 stack[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64[4]);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} part_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct part_event);
} part_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} part_ring SEC(".maps");

SEC("uprobe")
int part_hash_entry(void *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 value[4] = {1, 2, 3, 4};
	bpf_map_update_elem(&part_pending, &tid, &value, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int part_hash_return(void *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_lookup_elem(&part_pending, &tid))
		bpf_map_delete_elem(&part_pending, &tid);
	return 0;
}

SEC("uretprobe")
int part_stack(void *ctx)
{
	__u32 zero = 0;
	struct part_event *ev = bpf_map_lookup_elem(&part_scratch, &zero);
	if (ev)
		bpf_get_stack(ctx, ev->stack, PART_STACK_BYTES, BPF_F_USER_STACK);
	return 0;
}

SEC("uretprobe")
int part_ringbuf(void *ctx)
{
	__u32 zero = 0;
	struct part_event *ev = bpf_map_lookup_elem(&part_scratch, &zero);
	if (ev) /* a 10-frame allocation event */
		bpf_ringbuf_output(&part_ring, ev, 40 + 10 * 8, BPF_RB_NO_WAKEUP);
	return 0;
}
