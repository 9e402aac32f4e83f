// SPDX-License-Identifier: GPL-2.0
/* Kernel allocations (heaptrail-record --kernel): the kmem and percpu tracepoints, as BTF
 * tracepoints (tp_btf: attached through BPF, no tracefs needed). Every allocation is sent
 * with the kernel stack (the kernel's own unwinder: no frame pointers needed) and, when
 * the running process is a recorded one (-p, -- cmd), its user stack; every release with
 * its address only, since a kernel object can be released by any task.
 *
 * Tracepoint arguments changed over kernel versions; where they did, there is one program
 * per layout and the recorder loads the one matching the running kernel's BTF
 * (recorder/kernel_probes.cpp). */
#include <linux/types.h>
#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "heaptrail_kernel_event.h"

char LICENSE[] SEC("license") = "GPL";

/* Only the field read here; relocated against the running kernel's BTF. */
struct kmem_cache {
	unsigned int size; /* bytes per object, what the kmem_cache_alloc event calls bytes_alloc */
} __attribute__((preserve_access_index));
struct page;

/* Set by the recorder before load. */
const volatile __u32 self_tgid = 0;         /* the recorder: its own allocations are not recorded */
const volatile __u32 page_size = 4096;
const volatile __u32 kernel_stack_depth = 32;
const volatile __u32 kernel_stack_skip = 0; /* frames of the tracing machinery on top */
const volatile __u32 user_stack_depth = 0;  /* 0: no user stacks */
const volatile __u64 wakeup_bytes = 1 << 20;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* replaced by --ringbuf-size */
} kernel_events SEC(".maps");

/* Processes recorded in user space too (shared with heaptrail.bpf.c in combined mode):
 * their kernel allocations also carry the user stack. */
#include "heaptrail_targets.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_kernel_event);
} kernel_scratch SEC(".maps");

/* Events the ring buffer could not take, per kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HT_KIND_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} kernel_lost SEC(".maps");

/* How deep each CPU is in interrupt handling (hard irq handlers, softirqs), kept by the
 * irq tracepoints below: an allocation made there was not asked for by the task that
 * happens to be running. (No portable way to read the preemption count: x86's per-CPU
 * __preempt_count is not in kallsyms without CONFIG_KALLSYMS_ALL.) Timer and IPI
 * interrupts have no tracepoint; they rarely allocate. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s32);
} interrupt_depth SEC(".maps");

static __always_inline void enter_interrupt(int delta)
{
	__u32 zero = 0;
	__s32 *depth = bpf_map_lookup_elem(&interrupt_depth, &zero);
	if (!depth)
		return;
	/* Recording may start inside a handler: its exit comes without an entry. */
	*depth = *depth + delta < 0 ? 0 : *depth + delta;
}

static __always_inline bool in_interrupt_context(void)
{
	__u32 zero = 0;
	__s32 *depth = bpf_map_lookup_elem(&interrupt_depth, &zero);
	return depth && *depth > 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(on_softirq_entry, unsigned int vec)
{
	enter_interrupt(1);
	return 0;
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(on_softirq_exit, unsigned int vec)
{
	enter_interrupt(-1);
	return 0;
}

SEC("tp_btf/irq_handler_entry")
int BPF_PROG(on_irq_handler_entry, int irq)
{
	enter_interrupt(1);
	return 0;
}

SEC("tp_btf/irq_handler_exit")
int BPF_PROG(on_irq_handler_exit, int irq)
{
	enter_interrupt(-1);
	return 0;
}

static __always_inline void count_lost(__u32 kind)
{
	__u64 *counter = bpf_map_lookup_elem(&kernel_lost, &kind);
	if (counter)
		*counter += 1;
}

/* ZERO_SIZE_PTR (16) and NULL are not objects: kmalloc(0) returns the first, kfree
 * traces both. */
static __always_inline bool is_object(__u64 address)
{
	return address > 16;
}

static __always_inline void emit(void *ctx, __u32 kind, __u64 address, __u64 size, bool allocation)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	bool interrupt = in_interrupt_context();
	if (allocation && !interrupt && tgid == self_tgid)
		return;
	__u32 zero = 0;
	struct ht_kernel_event *ev = bpf_map_lookup_elem(&kernel_scratch, &zero);
	if (!ev)
		return;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->address = address;
	ev->size = size;
	ev->kind = kind;
	ev->flags = interrupt ? HT_KFLAG_INTERRUPT : 0;
	ev->pid = interrupt ? 0 : tgid;
	ev->tid = interrupt ? 0 : (__u32)pid_tgid;
	ev->kernel_frames = 0;
	ev->user_frames = 0;
	long kbytes = 0, ubytes = 0;
	if (allocation) {
		if (interrupt)
			__builtin_memset(ev->comm, 0, sizeof(ev->comm));
		else
			bpf_get_current_comm(ev->comm, sizeof(ev->comm));
		__u32 depth = kernel_stack_depth < HT_MAX_KERNEL_STACK_DEPTH ? kernel_stack_depth
									 : HT_MAX_KERNEL_STACK_DEPTH;
		kbytes = bpf_get_stack(ctx, ev->stack, depth * sizeof(__u64),
				       kernel_stack_skip & BPF_F_SKIP_FIELD_MASK);
		if (kbytes < 0)
			kbytes = 0;
		if (kbytes > HT_MAX_KERNEL_STACK_DEPTH * sizeof(__u64))
			kbytes = HT_MAX_KERNEL_STACK_DEPTH * sizeof(__u64);
		kbytes &= ~7L;
		if (user_stack_depth && !interrupt && bpf_map_lookup_elem(&targets, &tgid)) {
			__u32 udepth = user_stack_depth < HT_MAX_STACK_DEPTH ? user_stack_depth : HT_MAX_STACK_DEPTH;
			ubytes = bpf_get_stack(ctx, (void *)ev->stack + kbytes, udepth * sizeof(__u64),
					       BPF_F_USER_STACK);
			if (ubytes < 0)
				ubytes = 0;
			if (ubytes > HT_MAX_STACK_DEPTH * sizeof(__u64))
				ubytes = HT_MAX_STACK_DEPTH * sizeof(__u64);
			ubytes &= ~7L;
		}
		ev->kernel_frames = kbytes / sizeof(__u64);
		ev->user_frames = ubytes / sizeof(__u64);
	} else {
		__builtin_memset(ev->comm, 0, sizeof(ev->comm));
	}

	__u64 flags = bpf_ringbuf_query(&kernel_events, BPF_RB_AVAIL_DATA) > wakeup_bytes
			      ? BPF_RB_FORCE_WAKEUP
			      : BPF_RB_NO_WAKEUP;
	__u64 bytes = HT_KERNEL_EVENT_HEADER_SIZE + kbytes + ubytes;
	if (bytes > sizeof(*ev))
		bytes = sizeof(*ev);
	if (bpf_ringbuf_output(&kernel_events, ev, bytes, flags))
		count_lost(kind);
}

SEC("tp_btf/kmalloc")
int BPF_PROG(on_kmalloc, unsigned long call_site, const void *ptr, __u64 bytes_req, __u64 bytes_alloc)
{
	if (is_object((__u64)ptr))
		emit(ctx, HT_KMALLOC, (__u64)ptr, bytes_alloc, true);
	return 0;
}

SEC("tp_btf/kfree")
int BPF_PROG(on_kfree, unsigned long call_site, const void *ptr)
{
	if (is_object((__u64)ptr))
		emit(ctx, HT_KFREE, (__u64)ptr, 0, false);
	return 0;
}

/* Linux 6.1 and later: (call_site, ptr, struct kmem_cache *s, gfp_flags, node). */
SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(on_kmem_cache_alloc, unsigned long call_site, const void *ptr, struct kmem_cache *s)
{
	if (is_object((__u64)ptr) && s)
		emit(ctx, HT_KMEM_CACHE_ALLOC, (__u64)ptr, s->size, true);
	return 0;
}

/* Before Linux 6.1: (call_site, ptr, bytes_req, bytes_alloc, gfp_flags[, node]). */
SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(on_kmem_cache_alloc_sizes, unsigned long call_site, const void *ptr, __u64 bytes_req,
	     __u64 bytes_alloc)
{
	if (is_object((__u64)ptr))
		emit(ctx, HT_KMEM_CACHE_ALLOC, (__u64)ptr, bytes_alloc, true);
	return 0;
}

SEC("tp_btf/kmem_cache_free")
int BPF_PROG(on_kmem_cache_free, unsigned long call_site, const void *ptr)
{
	if (is_object((__u64)ptr))
		emit(ctx, HT_KMEM_CACHE_FREE, (__u64)ptr, 0, false);
	return 0;
}

SEC("tp_btf/mm_page_alloc")
int BPF_PROG(on_page_alloc, struct page *page, unsigned int order)
{
	if (page)
		emit(ctx, HT_PAGE_ALLOC, (__u64)page, (__u64)page_size << (order & 31), true);
	return 0;
}

SEC("tp_btf/mm_page_free")
int BPF_PROG(on_page_free, struct page *page, unsigned int order)
{
	if (page)
		emit(ctx, HT_PAGE_FREE, (__u64)page, (__u64)page_size << (order & 31), false);
	return 0;
}

/* Linux 6.2 and later: (call_site, reserved, is_atomic, size, align, base_addr, off, ptr,
 * bytes_alloc, gfp_flags). */
SEC("tp_btf/percpu_alloc_percpu")
int BPF_PROG(on_percpu_alloc, unsigned long call_site, bool reserved, bool is_atomic, __u64 size,
	     __u64 align, void *base_addr, int off, void *ptr, __u64 bytes_alloc)
{
	if (ptr)
		emit(ctx, HT_PERCPU_ALLOC, (__u64)ptr, bytes_alloc, true);
	return 0;
}

/* Before Linux 6.2: (reserved, is_atomic, size, align, base_addr, off, ptr): size per CPU. */
SEC("tp_btf/percpu_alloc_percpu")
int BPF_PROG(on_percpu_alloc_per_cpu_size, bool reserved, bool is_atomic, __u64 size, __u64 align,
	     void *base_addr, int off, void *ptr)
{
	if (ptr)
		emit(ctx, HT_PERCPU_ALLOC, (__u64)ptr, size, true);
	return 0;
}

SEC("tp_btf/percpu_free_percpu")
int BPF_PROG(on_percpu_free, void *base_addr, int off, void *ptr)
{
	if (ptr)
		emit(ctx, HT_PERCPU_FREE, (__u64)ptr, 0, false);
	return 0;
}
