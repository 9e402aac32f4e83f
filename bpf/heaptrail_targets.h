/* The processes being recorded (tgid -> 1), filled by the recorder: the target and, with
 * --follow-forks, each process of its tree before that process runs (fork_follower.h).
 * The probes are per process already; this also covers a vfork child, which shares its
 * parent's memory and so its probes. Kept in its own header for any BPF object that
 * needs to know the targets. */
#ifndef HEAPTRAIL_TARGETS_H
#define HEAPTRAIL_TARGETS_H

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} targets SEC(".maps");

#endif
