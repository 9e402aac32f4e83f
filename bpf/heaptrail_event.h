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
	/* Kernel allocations (heaptrail_kernel.bpf.c). */
	HT_KMALLOC = 17,
	HT_KMEM_CACHE_ALLOC = 18,
	HT_KFREE = 19,
	HT_KMEM_CACHE_FREE = 20,
	HT_PAGE_ALLOC = 21,
	HT_PAGE_FREE = 22,
	HT_PERCPU_ALLOC = 23,
	HT_PERCPU_FREE = 24,
	/* free() called by the C library's own code: fclose, freeaddrinfo, ... for the
	 * program, and glibc's flush of a thread's cache at thread exit (blocks the program
	 * freed already) for itself. The analyzer applies it only to a live block. */
	HT_LIBC_FREE = 25,
	HT_KIND_COUNT = 26,
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
	__u32 stack_bytes; /* valid bytes in stack[], a multiple of 8, | HT_STACK_INCOMPLETE */
	__u64 stack[HT_MAX_STACK_DEPTH];
};

/* Bit 31 of an event's stack_bytes: the walk stopped before the outermost frame (a pc
 * without a table or mapping, a rule it cannot follow, an unreadable stack). */
#define HT_STACK_INCOMPLETE (1u << 31)
/* Bit 30: the walk reached memory whose mapping the walker does not know yet (a library
 * mapped a moment ago, before the recorder loaded it): it stopped there, and the event
 * carries what the recorder needs to finish the walk with the same rules once it knows
 * that mapping (struct ht_deferred_event). */
#define HT_STACK_DEFERRED (1u << 30)
#define HT_STACK_FLAGS (HT_STACK_INCOMPLETE | HT_STACK_DEFERRED)

#define HT_EVENT_HEADER_SIZE __builtin_offsetof(struct ht_event, stack)
#ifdef __cplusplus
static_assert(HT_EVENT_HEADER_SIZE == 40, "the event header is sent as is: keep it packed");
#else
_Static_assert(HT_EVENT_HEADER_SIZE == 40, "the event header is sent as is: keep it packed");
#endif

/* Where a deferred walk stopped (HT_STACK_DEFERRED), and the top of the stack from
 * there: the recorder goes on from it (recorder/unwind/deferred_walk.h). */
#define HT_DEFER_STACK_BYTES 16384 /* a per-CPU map value stays under 32 KiB */
#define HT_PAGE_BYTES 4096
/* The copy is made page by page: a page of a large frame that was never touched is not
 * in memory, and BPF cannot fault it in. Chunk 0 runs from sp to the end of its page,
 * chunk i > 0 is the i-th page after it. */
#define HT_DEFER_STACK_CHUNKS (HT_DEFER_STACK_BYTES / HT_PAGE_BYTES + 1) /* up to 20 KiB */
struct ht_resume {
	__u64 pc, sp, bp;
	__u32 stack_len;    /* bytes in stack[], copied from sp (readable or not) */
	__u32 chunks_read;  /* bit i: chunk i of stack[] was read (the others hold nothing) */
	__u8 bp_known;      /* bp holds the frame's rbp (not lost in a frame that clobbered it) */
	__u8 pending;       /* pc is a return address not yet in the frames (emitted once its
			     * mapping is known) */
	__u8 stepped;       /* a frame was unwound already: pc is a return address */
	__u8 ip_is_return;  /* the walk started at a return address */
};
/* A deferred event: the event with its frame array whole, then the resume point. */
struct ht_deferred_event {
	struct ht_event event;
	struct ht_resume resume;
	__u8 stack[HT_DEFER_STACK_BYTES + HT_PAGE_BYTES]; /* the copy, and room for the
							    * verifier's view of a last page read whole */
};

/* How a probed function passes what is recorded; one branch of the generic entry
 * program each (the recorder's CallShape has the same values). */
enum ht_call_shape {
	HT_SHAPE_SIZE1 = 0,          /* size first, returns the pointer (malloc, new) */
	HT_SHAPE_SIZE2 = 1,          /* (alignment, size) */
	HT_SHAPE_CALLOC = 2,         /* (nmemb, size) */
	HT_SHAPE_REALLOC = 3,        /* (ptr, size) */
	HT_SHAPE_REALLOCARRAY = 4,   /* (ptr, nmemb, size) */
	HT_SHAPE_POSIX_MEMALIGN = 5, /* (memptr, alignment, size) */
	HT_SHAPE_MMAP = 6,
	HT_SHAPE_MUNMAP = 7,
	HT_SHAPE_FREE = 8,           /* (ptr): the end of a release chain (libc free) */
	HT_SHAPE_RELEASE = 9,        /* (ptr) that ends in free(): delete, custom frees */
	HT_SHAPE_ALLOCATOR_FREE = 10, /* (ptr) released by an allocator library (jemalloc,
				       * tcmalloc, mimalloc): return probed, nested like an allocation */
};

/* The BPF cookie of every uprobe: which function it sits on, what kind of event that
 * function makes, how it passes its arguments, and where the probe is in it. One
 * generic entry program serves every function:
 *   bits  0-7   event kind (enum ht_event_kind)
 *   bits  8-14  call shape (enum ht_call_shape); bit 15: HT_COOKIE_IN_LIBC
 *   bits 16-31  function id
 *   bits 32-51  where arguments 0-3 are at the probed instruction, 5 bits each:
 *               0 = their ABI register, r + 1 = x86-64 register number r (rax = 0,
 *               rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8 .. r15 = 15); a probe further in
 *               than the entry may find an argument moved (recorder/probe_sites.h)
 *   bits 52-63  bytes the function has pushed before the probed instruction, / 8:
 *               the entry's stack pointer is the probe's plus this */
#define HT_COOKIE(kind, shape, function)                                              \
	(((__u64)(function) << 16) | ((__u64)(shape) << 8) | (__u64)((kind) & 0xff))
#define HT_COOKIE_ARGUMENT(index, location) ((__u64)(location) << (32 + 5 * (index)))
#define HT_COOKIE_STACK_OFFSET(bytes) ((__u64)((bytes) / 8) << 52)
#define HT_COOKIE_KIND(cookie) ((__u32)((cookie) & 0xff))
#define HT_COOKIE_SHAPE(cookie) ((__u32)((cookie) >> 8) & 0x7f)
#define HT_COOKIE_FUNCTION(cookie) ((__u32)((cookie) >> 16) & 0xffff)
#define HT_COOKIE_LOCATION(cookie, index) ((__u32)((cookie) >> (32 + 5 * (index))) & 0x1f)
#define HT_COOKIE_STACK_BYTES(cookie) ((__u64)((cookie) >> 52) * 8)
/* Bit 15 (the shape byte's top bit): set on the probes of the C library the recorder
 * located (the one whose ELF addresses the BPF program was given): only there can a
 * caller be checked against libc's text. */
#define HT_COOKIE_IN_LIBC (1ull << 15)
#define HT_COOKIE_IS_IN_LIBC(cookie) (((cookie) >> 15) & 1)

#endif
