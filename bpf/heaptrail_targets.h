/* The processes being recorded (tgid -> 1). Both BPF objects declare it through this
 * header so that their definitions cannot drift: the recorder makes the fork tracker
 * reuse the allocator probes' map (bpf_map__reuse_fd), which requires equal definitions. */
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
