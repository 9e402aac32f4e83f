/* Event layout shared by heaptrail.bpf.c and the recorder (libbpf-tools style). */
#ifndef HEAPTRAIL_EVENT_H
#define HEAPTRAIL_EVENT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Deepest user stack the BPF side can capture (the kernel's perf_event_max_stack
 * default). --stack-depth chooses a value up to this. */
#define HT_MAX_STACK_DEPTH 127

/* Values are the ordinals of `EventKind` in schema/trace.capnp; schema/event_kinds.h
 * static-asserts that every value here equals its schema counterpart. */
enum ht_event_kind {
	HT_MALLOC = 0,
	HT_CALLOC = 1,
	HT_REALLOC = 2,
	HT_REALLOCARRAY = 3,
	HT_POSIX_MEMALIGN = 4,
	HT_ALIGNED_ALLOC = 5,
	HT_MEMALIGN = 6,
	HT_VALLOC = 7,
	HT_PVALLOC = 8,
	HT_FREE = 9,
	HT_REALLOC_RELEASE = 10,
	HT_MMAP = 11,
	HT_MUNMAP = 12,
	HT_OPERATOR_NEW = 13,
	HT_OPERATOR_NEW_ARRAY = 14,
	HT_OPERATOR_DELETE = 15,
	HT_OPERATOR_DELETE_ARRAY = 16,
	HT_KIND_COUNT = 17,
	/* Entry state of a call whose return is not recorded (file mmap, filtered size). */
	HT_IGNORED = 255,
};

/* One record in the ring buffer. Only the first stack_bytes bytes of stack[] are
 * sent, so a free costs HT_EVENT_HEADER_SIZE bytes of ring space and an allocation
 * HT_EVENT_HEADER_SIZE + 8 per frame. */
struct ht_event {
	__u64 ts_ns;       /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 address;
	__u64 size;
	__u32 pid;         /* tgid */
	__u32 tid;
	__u16 kind;        /* enum ht_event_kind */
	__u16 function;    /* which probed function (id assigned by the recorder) */
	__u32 stack_bytes; /* valid bytes in stack[], a multiple of 8 */
	__u64 stack[HT_MAX_STACK_DEPTH];
};

#define HT_EVENT_HEADER_SIZE __builtin_offsetof(struct ht_event, stack)
#ifdef __cplusplus
static_assert(HT_EVENT_HEADER_SIZE == 40, "the event header is sent as is: keep it packed");
#else
_Static_assert(HT_EVENT_HEADER_SIZE == 40, "the event header is sent as is: keep it packed");
#endif

/* The BPF cookie of every uprobe: which function it sits on and what kind of event
 * that function makes. One generic program serves all functions of a calling
 * convention (size in the first argument, pointer to release, ...). */
#define HT_COOKIE(kind, function) (((__u64)(function) << 16) | (kind))
#define HT_COOKIE_KIND(cookie) ((__u32)((cookie) & 0xffff))
#define HT_COOKIE_FUNCTION(cookie) ((__u32)((cookie) >> 16) & 0xffff)

#endif
