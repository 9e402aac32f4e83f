/* The kernel allocation event, shared by heaptrail_kernel.bpf.c and the recorder's
 * kernel mode (recorder/kernel_recording.*), libbpf-tools style. Kinds are the HT_K*,
 * HT_PAGE_* and HT_PERCPU_* values of heaptrail_event.h. */
#ifndef HEAPTRAIL_KERNEL_EVENT_H
#define HEAPTRAIL_KERNEL_EVENT_H

#include "heaptrail_event.h"

/* Deepest kernel stack captured per allocation (--kernel-stack-depth chooses up to this). */
#define HT_MAX_KERNEL_STACK_DEPTH 64
#define HT_COMM_BYTES 16

/* Which tracepoint groups are recorded (--kernel-events), a bit each. */
#define HT_KGROUP_KMALLOC (1u << 0) /* kmem:kmalloc, kmem:kfree */
#define HT_KGROUP_CACHE (1u << 1)   /* kmem:kmem_cache_alloc, kmem:kmem_cache_free */
#define HT_KGROUP_PAGE (1u << 2)    /* kmem:mm_page_alloc, kmem:mm_page_free */
#define HT_KGROUP_PERCPU (1u << 3)  /* percpu:percpu_alloc_percpu, percpu:percpu_free_percpu */

/* The event happened in interrupt context (hard or soft irq): the running task did not
 * ask for it, so it is attributed to no process (pid = tid = 0). */
#define HT_KFLAG_INTERRUPT (1u << 0)

/* One record in the kernel ring buffer. Only the header and the captured frames are
 * sent: kernel_frames kernel return addresses then user_frames user ones. */
struct ht_kernel_event {
	__u64 ts_ns;       /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 address;
	__u64 size;
	__u32 pid;         /* tgid of the running task, 0 in interrupt context */
	__u32 tid;
	__u16 kind;        /* enum ht_event_kind */
	__u16 flags;       /* HT_KFLAG_* */
	__u16 kernel_frames;
	__u16 user_frames;
	char comm[HT_COMM_BYTES];
	__u64 stack[HT_MAX_KERNEL_STACK_DEPTH + HT_MAX_STACK_DEPTH];
};

#define HT_KERNEL_EVENT_HEADER_SIZE __builtin_offsetof(struct ht_kernel_event, stack)
#ifdef __cplusplus
static_assert(HT_KERNEL_EVENT_HEADER_SIZE == 56, "the event header is sent as is: keep it packed");
#else
_Static_assert(HT_KERNEL_EVENT_HEADER_SIZE == 56, "the event header is sent as is: keep it packed");
#endif

#endif
