// SPDX-License-Identifier: GPL-2.0
/* Uprobes on a process's allocator: every allocation (with its user stack, taken at
 * return so that the allocator's immediate caller is in it) and every free, streamed
 * through one ring buffer. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "heaptrail_event.h"

char LICENSE[] SEC("license") = "GPL";

#define MAP_ANONYMOUS 0x20

/* Set by the recorder before load. */
const volatile __u64 min_size = 0;         /* 0: no lower bound */
const volatile __u64 max_size = 0;         /* 0: no upper bound */
const volatile __u32 stack_depth = 64;
/* Unread bytes in the ring above which a writer wakes the recorder up; below it no
 * wakeup is sent and the recorder drains on its own timer. */
const volatile __u64 wakeup_bytes = 1 << 20;
/* Virtual addresses, in the allocator's ELF file, of its executable segment and of
 * mmap/munmap: calls made from inside the allocator object (thread stacks, malloc's
 * own mappings, free's munmap) are its business, not the program's. Zero: no check. */
const volatile __u64 alloc_text_start = 0;
const volatile __u64 alloc_text_end = 0;
const volatile __u64 mmap_vaddr = 0;
const volatile __u64 munmap_vaddr = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* replaced by --ringbuf-size */
} events SEC(".maps");

/* Processes being recorded (tgid -> 1). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} targets SEC(".maps");

/* An allocator call between its entry and its return, per thread. Calls that an
 * allocator function makes to another (realloc -> malloc, malloc -> mmap) are nested:
 * they only raise `depth`, so each user call is recorded once. */
struct pending_call {
	__u64 size;
	__u64 arg;   /* posix_memalign: memptr */
	__u64 sp;    /* stack pointer at entry: a deeper call is nested in this one */
	__u32 kind;
	__u32 depth;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct pending_call);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_event);
} scratch SEC(".maps");

/* Events the ring buffer could not take, per kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HT_KIND_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

static __always_inline bool is_target(__u32 tgid)
{
	return bpf_map_lookup_elem(&targets, &tgid) != NULL;
}

static __always_inline void count_lost(__u32 kind)
{
	__u64 *counter = bpf_map_lookup_elem(&lost, &kind);
	if (counter)
		*counter += 1;
}

static __always_inline void emit(void *ctx, __u64 pid_tgid, __u32 kind, __u64 address,
				 __u64 size, bool with_stack)
{
	__u32 zero = 0;
	struct ht_event *ev = bpf_map_lookup_elem(&scratch, &zero);
	if (!ev)
		return;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->address = address;
	ev->size = size;
	ev->pid = pid_tgid >> 32;
	ev->tid = (__u32)pid_tgid;
	ev->kind = kind;
	long n = 0;
	if (with_stack) {
		__u32 bytes = stack_depth * sizeof(__u64);
		if (bytes > sizeof(ev->stack))
			bytes = sizeof(ev->stack);
		n = bpf_get_stack(ctx, ev->stack, bytes, BPF_F_USER_STACK);
		if (n < 0)
			n = 0;
	}
	if (n > sizeof(ev->stack))
		n = sizeof(ev->stack);
	ev->stack_bytes = n;

	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > wakeup_bytes
			      ? BPF_RB_FORCE_WAKEUP
			      : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&events, ev, HT_EVENT_HEADER_SIZE + n, flags))
		count_lost(kind);
}

/* Records the entry of an allocator call. Returns true for an outermost call, false
 * for one nested in another allocator call of the same thread. */
static __always_inline bool enter(struct pt_regs *ctx, __u32 kind, __u64 size, __u64 arg)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	__u64 sp = PT_REGS_SP(ctx);
	struct pending_call *outer = bpf_map_lookup_elem(&pending, &tid);
	/* An entry at or above the stored one's stack pointer means that call is gone
	 * without a return (longjmp, thread cancelled): replace it. */
	if (outer && sp < outer->sp) {
		outer->depth++;
		return false;
	}
	if (kind != HT_IGNORED &&
	    ((min_size && size < min_size) || (max_size && size > max_size)))
		kind = HT_IGNORED;
	struct pending_call call = {.size = size, .arg = arg, .sp = sp, .kind = kind};
	bpf_map_update_elem(&pending, &tid, &call, BPF_ANY);
	return true;
}

/* True when the thread is inside an allocator call (its free/munmap is internal). */
static __always_inline bool nested(struct pt_regs *ctx, __u32 tid)
{
	struct pending_call *outer = bpf_map_lookup_elem(&pending, &tid);
	return outer && PT_REGS_SP(ctx) < outer->sp;
}

/* At a function's first instruction the return address is at [sp]; the probe address
 * minus the function's ELF address is the object's load bias. */
static __always_inline bool called_from_allocator(struct pt_regs *ctx, __u64 func_vaddr)
{
	if (!alloc_text_end || !func_vaddr)
		return false;
	__u64 ret = 0;
	if (bpf_probe_read_user(&ret, sizeof(ret), (void *)PT_REGS_SP(ctx)))
		return false;
	__u64 caller = ret - (PT_REGS_IP(ctx) - func_vaddr);
	return caller >= alloc_text_start && caller < alloc_text_end;
}

#define ENTRY_GUARD()                                                  \
	if (!is_target(bpf_get_current_pid_tgid() >> 32))              \
		return 0;

SEC("uprobe")
int BPF_KPROBE(malloc_enter, __u64 size)
{
	ENTRY_GUARD();
	enter(ctx, HT_MALLOC, size, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(calloc_enter, __u64 nmemb, __u64 size)
{
	ENTRY_GUARD();
	enter(ctx, HT_CALLOC, nmemb * size, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(realloc_enter, __u64 ptr, __u64 size)
{
	ENTRY_GUARD();
	if (enter(ctx, HT_REALLOC, size, 0) && ptr)
		emit(ctx, bpf_get_current_pid_tgid(), HT_REALLOC_RELEASE, ptr, size, false);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(reallocarray_enter, __u64 ptr, __u64 nmemb, __u64 size)
{
	ENTRY_GUARD();
	if (enter(ctx, HT_REALLOCARRAY, nmemb * size, 0) && ptr)
		emit(ctx, bpf_get_current_pid_tgid(), HT_REALLOC_RELEASE, ptr, nmemb * size, false);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(posix_memalign_enter, __u64 memptr, __u64 alignment, __u64 size)
{
	ENTRY_GUARD();
	enter(ctx, HT_POSIX_MEMALIGN, size, memptr);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(aligned_alloc_enter, __u64 alignment, __u64 size)
{
	ENTRY_GUARD();
	enter(ctx, HT_ALIGNED_ALLOC, size, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(memalign_enter, __u64 alignment, __u64 size)
{
	ENTRY_GUARD();
	enter(ctx, HT_MEMALIGN, size, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(valloc_enter, __u64 size)
{
	ENTRY_GUARD();
	enter(ctx, HT_VALLOC, size, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(pvalloc_enter, __u64 size)
{
	ENTRY_GUARD();
	enter(ctx, HT_PVALLOC, size, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(mmap_enter, __u64 addr, __u64 length, __u64 prot, __u64 flags)
{
	ENTRY_GUARD();
	/* File mappings and the allocator's own are not the program's heap; they still
	 * take a slot so that the return probe pairs with the right call. */
	bool heap = (flags & MAP_ANONYMOUS) && !called_from_allocator(ctx, mmap_vaddr);
	enter(ctx, heap ? HT_MMAP : HT_IGNORED, length, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(free_enter, __u64 ptr)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!ptr || !is_target(pid_tgid >> 32) || nested(ctx, (__u32)pid_tgid))
		return 0;
	emit(ctx, pid_tgid, HT_FREE, ptr, 0, false);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(munmap_enter, __u64 addr, __u64 length)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!is_target(pid_tgid >> 32) || nested(ctx, (__u32)pid_tgid) ||
	    called_from_allocator(ctx, munmap_vaddr))
		return 0;
	emit(ctx, pid_tgid, HT_MUNMAP, addr, length, false);
	return 0;
}

/* One return probe serves every allocator function: the entry state says which. */
SEC("uretprobe")
int BPF_KRETPROBE(alloc_return, __u64 ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct pending_call *p = bpf_map_lookup_elem(&pending, &tid);
	if (!p)
		return 0;
	if (p->depth) {
		p->depth--;
		return 0;
	}
	struct pending_call call = *p;
	bpf_map_delete_elem(&pending, &tid);

	__u64 address = ret;
	switch (call.kind) {
	case HT_IGNORED:
		return 0;
	case HT_REALLOC:
	case HT_REALLOCARRAY:
		/* Recorded even when it failed: the release at entry must be undone. */
		emit(ctx, pid_tgid, call.kind, address, call.size, address != 0);
		return 0;
	case HT_POSIX_MEMALIGN:
		address = 0;
		if (ret == 0)
			bpf_probe_read_user(&address, sizeof(address), (void *)call.arg);
		break;
	case HT_MMAP:
		if (address == (__u64)-1)
			address = 0;
		break;
	}
	if (address)
		emit(ctx, pid_tgid, call.kind, address, call.size, true);
	return 0;
}
