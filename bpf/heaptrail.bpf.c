// SPDX-License-Identifier: GPL-2.0
/* Uprobes on a process's allocator functions: every allocation (with its user stack,
 * taken at return so that the allocator's immediate caller is in it) and every
 * release, streamed through one ring buffer. Each uprobe's BPF cookie says which
 * function it is on and what kind of event it makes (HT_COOKIE).
 *
 * Only user registers are read here, through the UAPI struct pt_regs, so this object
 * needs no kernel BTF: loading it does not make libbpf parse vmlinux's BTF (several
 * MiB of the recorder's peak memory). Following forks, which reads kernel structures,
 * is a separate CO-RE object (heaptrail_fork.bpf.c). */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>

#include "heaptrail_arch.h"

#include "heaptrail_event.h"
#include "user_stack.h"

char LICENSE[] SEC("license") = "GPL";

#define MAP_ANONYMOUS 0x20
/* How far below a release function's stack pointer a call it makes can be and still
 * count as the same release (delete tail-calls free: same sp; a plain call: lower). */
#define RELEASE_CHAIN_BYTES 512

/* Set by the recorder before load. */
const volatile __u64 min_size = 0;         /* 0: no lower bound */
const volatile __u64 max_size = 0;         /* 0: no upper bound */
const volatile __u32 stack_depth = 64;
/* Unread bytes in the ring above which a writer wakes the recorder up; below it no
 * wakeup is sent and the recorder drains on its own timer. */
const volatile __u64 wakeup_bytes = 1 << 20;
/* Virtual addresses, in libc's ELF file, of its executable segment and of mmap/munmap:
 * calls made from inside libc (thread stacks, malloc's own mappings, free's munmap)
 * are its business, not the program's. Zero: no check. */
const volatile __u64 alloc_text_start = 0;
const volatile __u64 alloc_text_end = 0;
const volatile __u64 mmap_vaddr = 0;
const volatile __u64 munmap_vaddr = 0;
/* --release-stacks: capture the user stack of releases too (free, delete), for
 * mismatched-family and double-free reports. Off by default: it doubles the cost of a
 * free. */
const volatile __u8 release_stacks = 0;  /* a __u8: the skeleton is also compiled as C++ */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 << 20); /* replaced by --ringbuf-size */
} events SEC(".maps");

#include "heaptrail_targets.h"

/* An allocator call between its entry and its return, per thread. Calls that an
 * allocator function makes to another (realloc -> malloc, new -> malloc, malloc ->
 * mmap) are nested: they only raise `depth`, so each user call is recorded once. */
struct pending_call {
	__u64 size;
	__u64 arg;   /* posix_memalign: memptr */
	__u64 sp;    /* stack pointer at entry: a deeper call is nested in this one */
	__u32 kind;
	__u16 function;
	__u16 depth;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* threads inside an allocator call at once */
	__type(key, __u32);
	__type(value, struct pending_call);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pending SEC(".maps");

/* The release (operator delete, a custom free) a thread is in, so that the free() it
 * ends in is not recorded a second time. No return probe is needed: delete reaches
 * free by a tail call, and the entry is consumed there. */
struct release_call {
	__u64 ptr;
	__u64 sp;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct release_call);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} releasing SEC(".maps");

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

/* Sends one event; `stack_at` says whether and where the user stack is taken. */
static __always_inline void emit(void *ctx, __u64 pid_tgid, __u32 kind, __u32 function,
				 __u64 address, __u64 size, enum ht_stack_at stack_at)
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
	ev->function = function;
	long n = 0;
	if (stack_at != HT_STACK_NONE) {
		__u32 frames = stack_depth < HT_MAX_STACK_DEPTH ? stack_depth : HT_MAX_STACK_DEPTH;
		n = capture_user_stack(ctx, ev->stack, frames, stack_at);
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

/* The stack of a release (free, delete) is only taken with --release-stacks. */
static __always_inline enum ht_stack_at release_stack_at(void)
{
	return release_stacks ? HT_STACK_AT_ENTRY : HT_STACK_NONE;
}

/* Which process and thread hit a probe, and the function and event kind its cookie
 * names (HT_COOKIE). */
struct probe_hit {
	__u64 pid_tgid;
	__u32 tid;
	__u32 kind;
	__u32 function;
};

/* False when the calling process is not recorded: the probe does nothing. */
static __always_inline bool hit_of_target(void *ctx, struct probe_hit *hit)
{
	hit->pid_tgid = bpf_get_current_pid_tgid();
	if (!is_target(hit->pid_tgid >> 32))
		return false;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	hit->tid = (__u32)hit->pid_tgid;
	hit->kind = HT_COOKIE_KIND(cookie);
	hit->function = HT_COOKIE_FUNCTION(cookie);
	return true;
}

/* Records the entry of an allocator call. Returns true for an outermost call, false
 * for one nested in another allocator call of the same thread. `kind` is the hit's,
 * or HT_IGNORED for a call whose return is not recorded. */
static __always_inline bool enter(struct pt_regs *ctx, const struct probe_hit *hit, __u32 kind,
				  __u64 size, __u64 arg)
{
	__u32 tid = hit->tid;
	__u64 sp = PT_REGS_SP(ctx);
	struct pending_call *outer = bpf_map_lookup_elem(&pending, &tid);
	/* Nested calls run at or below the outer call's stack pointer (at it for a tail
	 * call). An entry above it means that call is gone without a return (longjmp,
	 * thread cancelled): replace it. */
	if (outer && sp <= outer->sp) {
		outer->depth++;
		return false;
	}
	if (kind != HT_IGNORED &&
	    ((min_size && size < min_size) || (max_size && size > max_size)))
		kind = HT_IGNORED;
	struct pending_call call = {
		.size = size, .arg = arg, .sp = sp, .kind = kind, .function = hit->function};
	bpf_map_update_elem(&pending, &tid, &call, BPF_ANY);
	return true;
}

/* True when the thread is inside an allocator call (its free/munmap is internal). */
static __always_inline bool nested(struct pt_regs *ctx, __u32 tid)
{
	struct pending_call *outer = bpf_map_lookup_elem(&pending, &tid);
	return outer && PT_REGS_SP(ctx) <= outer->sp;
}

/* True when this release of `ptr` is part of one already recorded (delete -> free). */
static __always_inline bool in_release_of(struct pt_regs *ctx, __u32 tid, __u64 ptr)
{
	struct release_call *r = bpf_map_lookup_elem(&releasing, &tid);
	__u64 sp = PT_REGS_SP(ctx);
	return r && r->ptr == ptr && sp <= r->sp && sp + RELEASE_CHAIN_BYTES > r->sp;
}

/* At a function's first instruction the return address is at [sp] (x86-64) or in the
 * link register (arm); the probe address minus the function's ELF address is the
 * object's load bias. */
static __always_inline bool called_from_allocator(struct pt_regs *ctx, __u64 func_vaddr)
{
	if (!alloc_text_end || !func_vaddr)
		return false;
	__u64 ret = ht_entry_return_address(ctx);
	if (!ret)
		return false;
	__u64 caller = ret - (PT_REGS_IP(ctx) - func_vaddr);
	return caller >= alloc_text_start && caller < alloc_text_end;
}

/* malloc, valloc, pvalloc, operator new and new[] (all variants): size first. */
SEC("uprobe")
int BPF_KPROBE(alloc_size1_enter, __u64 size)
{
	struct probe_hit hit;
	if (hit_of_target(ctx, &hit))
		enter(ctx, &hit, hit.kind, size, 0);
	return 0;
}

/* memalign, aligned_alloc: (alignment, size). */
SEC("uprobe")
int BPF_KPROBE(alloc_size2_enter, __u64 alignment, __u64 size)
{
	struct probe_hit hit;
	if (hit_of_target(ctx, &hit))
		enter(ctx, &hit, hit.kind, size, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(calloc_enter, __u64 nmemb, __u64 size)
{
	struct probe_hit hit;
	if (hit_of_target(ctx, &hit))
		enter(ctx, &hit, hit.kind, nmemb * size, 0);
	return 0;
}

/* realloc releases the old block at entry (recorded even if the call then fails: the
 * return says so). */
static __always_inline void enter_realloc(struct pt_regs *ctx, __u64 ptr, __u64 size)
{
	struct probe_hit hit;
	if (!hit_of_target(ctx, &hit))
		return;
	if (enter(ctx, &hit, hit.kind, size, 0) && ptr)
		emit(ctx, hit.pid_tgid, HT_REALLOC_RELEASE, hit.function, ptr, size, HT_STACK_NONE);
}

SEC("uprobe")
int BPF_KPROBE(realloc_enter, __u64 ptr, __u64 size)
{
	enter_realloc(ctx, ptr, size);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(reallocarray_enter, __u64 ptr, __u64 nmemb, __u64 size)
{
	enter_realloc(ctx, ptr, nmemb * size);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(posix_memalign_enter, __u64 memptr, __u64 alignment, __u64 size)
{
	struct probe_hit hit;
	if (hit_of_target(ctx, &hit))
		enter(ctx, &hit, hit.kind, size, memptr);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(mmap_enter, __u64 addr, __u64 length, __u64 prot, __u64 flags)
{
	struct probe_hit hit;
	if (!hit_of_target(ctx, &hit))
		return 0;
	/* File mappings and libc's own are not the program's heap; they still take a slot
	 * so that the return probe pairs with the right call. */
	bool heap = (flags & MAP_ANONYMOUS) && !called_from_allocator(ctx, mmap_vaddr);
	enter(ctx, &hit, heap ? hit.kind : HT_IGNORED, length, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(munmap_enter, __u64 addr, __u64 length)
{
	struct probe_hit hit;
	if (!hit_of_target(ctx, &hit) || nested(ctx, hit.tid) || called_from_allocator(ctx, munmap_vaddr))
		return 0;
	emit(ctx, hit.pid_tgid, hit.kind, hit.function, addr, length, HT_STACK_NONE);
	return 0;
}

/* free(): the end of every release chain. */
SEC("uprobe")
int BPF_KPROBE(free_enter, __u64 ptr)
{
	struct probe_hit hit;
	if (!ptr || !hit_of_target(ctx, &hit) || nested(ctx, hit.tid))
		return 0;
	if (in_release_of(ctx, hit.tid, ptr)) {
		bpf_map_delete_elem(&releasing, &hit.tid);
		return 0;
	}
	emit(ctx, hit.pid_tgid, hit.kind, hit.function, ptr, 0, release_stack_at());
	return 0;
}

/* operator delete/delete[] (all variants) and custom frees: they end in free(). */
SEC("uprobe")
int BPF_KPROBE(release_enter, __u64 ptr)
{
	struct probe_hit hit;
	if (!ptr || !hit_of_target(ctx, &hit) || nested(ctx, hit.tid) || in_release_of(ctx, hit.tid, ptr))
		return 0;
	struct release_call r = {.ptr = ptr, .sp = PT_REGS_SP(ctx)};
	bpf_map_update_elem(&releasing, &hit.tid, &r, BPF_ANY);
	emit(ctx, hit.pid_tgid, hit.kind, hit.function, ptr, 0, release_stack_at());
	return 0;
}

/* One return probe serves every allocating function: the entry state says which. */
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
		emit(ctx, pid_tgid, call.kind, call.function, address, call.size,
		     address ? HT_STACK_AT_RETURN : HT_STACK_NONE);
		return 0;
	case HT_POSIX_MEMALIGN:
		address = 0;
		if (ret == 0)
			bpf_probe_read_user(&address, HT_USER_POINTER_BYTES, (void *)call.arg);
		break;
	case HT_MMAP:
		if (address == HT_MAP_FAILED)
			address = 0;
		break;
	}
	if (address)
		emit(ctx, pid_tgid, call.kind, call.function, address, call.size, HT_STACK_AT_RETURN);
	return 0;
}
