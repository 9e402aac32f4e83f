// SPDX-License-Identifier: GPL-2.0
/* --follow-forks: a process forked by a recorded one is recorded from its first
 * instruction. Loaded only with that option (it is CO-RE: it reads task_struct), with
 * its `targets` map replaced by heaptrail.bpf.c's. */
#include "heaptrail_kernel_types.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#include "heaptrail_targets.h"

SEC("tp_btf/sched_process_fork")
int BPF_PROG(follow_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_tgid = BPF_CORE_READ(parent, tgid);
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	if (child_tgid == parent_tgid || !bpf_map_lookup_elem(&targets, &parent_tgid))
		return 0;
	__u8 one = 1;
	bpf_map_update_elem(&targets, &child_tgid, &one, BPF_ANY);
	return 0;
}
