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
#include <bpf/bpf_tracing.h>

#include "heaptrail_event.h"

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

/* A copy of the top of the user stack, in which the frame-pointer chain is followed:
 * one copy of 2 KiB costs far less than bpf_get_stack()'s read per frame. The extra 16
 * bytes let a frame record at any masked offset be read whole. */
#define STACK_WINDOW 2048
struct stack_window {
	__u8 bytes[STACK_WINDOW + 16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack_window);
} stack_windows SEC(".maps");

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

/* Walks the frame-pointer chain of the user stack into out[]; returns the bytes
 * written, or -1 when the stack cannot be copied (the caller falls back to
 * bpf_get_stack). Frame 0 is the return address into the allocator's caller: the
 * instruction pointer at a return probe, [sp] at an entry probe. */
static __always_inline long walk_user_stack(struct pt_regs *regs, __u64 *out, __u32 max_frames,
					    bool at_entry)
{
	/* Registers first: the verifier wants plain loads from the context. */
	__u64 ip = PT_REGS_IP(regs);
	__u64 sp = PT_REGS_SP(regs);
	__u64 fp = PT_REGS_FP(regs);
	__u32 zero = 0;
	struct stack_window *w = bpf_map_lookup_elem(&stack_windows, &zero);
	if (!w)
		return -1;
	if (bpf_probe_read_user(w->bytes, STACK_WINDOW, (void *)sp))
		return -1;
	out[0] = at_entry ? *(__u64 *)&w->bytes[0] : ip;
	__u32 n = 1;
	for (int i = 1; i < HT_MAX_STACK_DEPTH; i++) {
		if (n >= max_frames || n >= HT_MAX_STACK_DEPTH)
			break;
		/* A frame record lies above the stack pointer, 8-byte aligned. */
		if (fp < sp || (fp & 7))
			break;
		__u64 next, ret;
		__u64 offset = fp - sp;
		if (offset <= STACK_WINDOW - 16) {
			offset &= STACK_WINDOW - 1;
			next = *(__u64 *)&w->bytes[offset];
			ret = *(__u64 *)&w->bytes[offset + 8];
		} else {
			__u64 record[2];
			if (bpf_probe_read_user(record, sizeof(record), (void *)fp))
				break;
			next = record[0];
			ret = record[1];
		}
		if (!ret)
			break;
		out[n++] = ret;
		if (next <= fp)
			break;
		fp = next;
	}
	return n * sizeof(__u64);
}

/* with_stack: at a return probe. entry_stack: at an entry probe, where the stack
 * would start in the probed function and miss its caller (whose return address is at
 * [sp], not yet in the frame chain): frame 0 is replaced by that return address. */
static __always_inline void emit(void *ctx, __u64 pid_tgid, __u32 kind, __u32 function,
				 __u64 address, __u64 size, bool with_stack, bool entry_stack)
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
	if (with_stack || entry_stack) {
		__u32 bytes = stack_depth * sizeof(__u64);
		if (bytes > sizeof(ev->stack))
			bytes = sizeof(ev->stack);
		n = walk_user_stack(ctx, ev->stack, bytes / sizeof(__u64), entry_stack);
		if (n < 0) {
			/* The top of the stack could not be copied (it ends within the
			 * window): let the kernel walk it. */
			n = bpf_get_stack(ctx, ev->stack, bytes, BPF_F_USER_STACK);
			if (n < 0)
				n = 0;
			if (entry_stack && n >= sizeof(__u64) &&
			    bpf_probe_read_user(&ev->stack[0], sizeof(__u64),
						(void *)PT_REGS_SP((struct pt_regs *)ctx)))
				n = 0;
		}
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
static __always_inline bool enter(struct pt_regs *ctx, __u32 kind, __u32 function, __u64 size,
				  __u64 arg)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
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
		.size = size, .arg = arg, .sp = sp, .kind = kind, .function = function};
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
		return 0;                                              \
	__u64 cookie = bpf_get_attach_cookie(ctx);                     \
	__u32 kind = HT_COOKIE_KIND(cookie);                           \
	__u32 function = HT_COOKIE_FUNCTION(cookie);

/* malloc, valloc, pvalloc, operator new and new[] (all variants): size first. */
SEC("uprobe")
int BPF_KPROBE(alloc_size1_enter, __u64 size)
{
	ENTRY_GUARD();
	enter(ctx, kind, function, size, 0);
	return 0;
}

/* memalign, aligned_alloc: (alignment, size). */
SEC("uprobe")
int BPF_KPROBE(alloc_size2_enter, __u64 alignment, __u64 size)
{
	ENTRY_GUARD();
	enter(ctx, kind, function, size, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(calloc_enter, __u64 nmemb, __u64 size)
{
	ENTRY_GUARD();
	enter(ctx, kind, function, nmemb * size, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(realloc_enter, __u64 ptr, __u64 size)
{
	ENTRY_GUARD();
	if (enter(ctx, kind, function, size, 0) && ptr)
		emit(ctx, bpf_get_current_pid_tgid(), HT_REALLOC_RELEASE, function, ptr, size, false, false);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(reallocarray_enter, __u64 ptr, __u64 nmemb, __u64 size)
{
	ENTRY_GUARD();
	if (enter(ctx, kind, function, nmemb * size, 0) && ptr)
		emit(ctx, bpf_get_current_pid_tgid(), HT_REALLOC_RELEASE, function, ptr, nmemb * size,
		     false, false);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(posix_memalign_enter, __u64 memptr, __u64 alignment, __u64 size)
{
	ENTRY_GUARD();
	enter(ctx, kind, function, size, memptr);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(mmap_enter, __u64 addr, __u64 length, __u64 prot, __u64 flags)
{
	ENTRY_GUARD();
	/* File mappings and libc's own are not the program's heap; they still take a slot
	 * so that the return probe pairs with the right call. */
	bool heap = (flags & MAP_ANONYMOUS) && !called_from_allocator(ctx, mmap_vaddr);
	enter(ctx, heap ? kind : HT_IGNORED, function, length, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(munmap_enter, __u64 addr, __u64 length)
{
	ENTRY_GUARD();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (nested(ctx, (__u32)pid_tgid) || called_from_allocator(ctx, munmap_vaddr))
		return 0;
	emit(ctx, pid_tgid, kind, function, addr, length, false, false);
	return 0;
}

/* free(): the end of every release chain. */
SEC("uprobe")
int BPF_KPROBE(free_enter, __u64 ptr)
{
	ENTRY_GUARD();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	if (!ptr || nested(ctx, tid))
		return 0;
	if (in_release_of(ctx, tid, ptr)) {
		bpf_map_delete_elem(&releasing, &tid);
		return 0;
	}
	emit(ctx, pid_tgid, kind, function, ptr, 0, false, release_stacks);
	return 0;
}

/* operator delete/delete[] (all variants) and custom frees: they end in free(). */
SEC("uprobe")
int BPF_KPROBE(release_enter, __u64 ptr)
{
	ENTRY_GUARD();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	if (!ptr || nested(ctx, tid) || in_release_of(ctx, tid, ptr))
		return 0;
	struct release_call r = {.ptr = ptr, .sp = PT_REGS_SP(ctx)};
	bpf_map_update_elem(&releasing, &tid, &r, BPF_ANY);
	emit(ctx, pid_tgid, kind, function, ptr, 0, false, release_stacks);
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
		emit(ctx, pid_tgid, call.kind, call.function, address, call.size, address != 0, false);
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
		emit(ctx, pid_tgid, call.kind, call.function, address, call.size, true, false);
	return 0;
}
