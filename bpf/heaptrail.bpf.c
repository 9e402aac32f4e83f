// SPDX-License-Identifier: GPL-2.0
/* Uprobes on a process's allocator functions: every allocation (with its user stack,
 * taken at return so that the allocator's immediate caller is in it) and every
 * release, streamed through one ring buffer. Two programs serve every function: one
 * entry program and one return program; each uprobe's BPF cookie says which function
 * it is on, what kind of event it makes, how its arguments are passed and where in the
 * function the probe is (HT_COOKIE): a probe goes on the first instruction the kernel
 * can emulate rather than single-step (recorder/probe_sites.h).
 *
 * Only user registers are read here, through the UAPI struct pt_regs, so this object
 * needs no kernel BTF: loading it does not make libbpf parse vmlinux's BTF (several
 * MiB of the recorder's peak memory). Following forks needs no BPF: the recorder traces
 * the process tree (recorder/fork_follower.h). */
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
/* Virtual addresses, in libc's ELF file, of its executable segment and of the probed
 * instructions of mmap/munmap/free: calls made from inside libc (thread stacks, malloc's own
 * mappings, free's munmap) are its business, not the program's. Zero: no check. */
const volatile __u64 alloc_text_start = 0;
const volatile __u64 alloc_text_end = 0;
const volatile __u64 mmap_vaddr = 0;
const volatile __u64 munmap_vaddr = 0;
const volatile __u64 free_vaddr = 0;
/* --release-stacks: capture the user stack of releases too (free, delete), for
 * mismatched-family and double-free reports. Off by default: it doubles the cost of a
 * free. */
const volatile __u8 release_stacks = 0;  /* a __u8: the skeleton is also compiled as C++ */
/* Whether a probe must check that the caller is a target. Not with uprobe_multi links,
 * which the kernel runs for their own process's threads only; one link per probe is
 * filtered by memory map, which a vfork child shares with its parent. */
const volatile __u8 check_targets = 1;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 << 20); /* replaced by --ringbuf-size */
} events SEC(".maps");

#include "heaptrail_targets.h"

/* An allocator call between its entry and its return, per thread. Calls that an
 * allocator function makes to another (realloc -> malloc, new -> malloc, malloc ->
 * mmap) are nested: they only raise a count, so each user call is recorded once.
 *
 * The state never outlives its call: it is only believed while the slot of its return
 * address still shows the return probe's hijack (still_active), and a return above
 * it ends it. So a call whose return is never seen (a return probe attached after its
 * entry, an exception or longjmp out of the allocator, a thread gone mid-call) cannot
 * make the thread's later calls look nested.
 *
 * A thread's entry stays in the map between calls (sp = 0: no call), so that a call
 * costs a lookup and plain stores rather than a hash insert and delete; the recorder
 * removes the entries of threads that have exited (AllocatorProbes::forgetExitedThreads). */
struct pending_call {
	__u64 size;
	__u64 arg;   /* posix_memalign: memptr */
	__u64 sp;    /* stack pointer at entry: the slot of the return address; 0: no call */
	__u64 ret;   /* the return address at entry, before the return probe replaced it */
	__u32 kind;
	__u16 function;
	__u8 tail;   /* calls entered at the same stack pointer (tail calls) */
	__u8 deep;   /* calls entered below it (real nesting) */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* threads that call an allocator function */
	__type(key, __u32);
	__type(value, struct pending_call);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pending SEC(".maps");

/* The release (operator delete, a custom free) a thread is in, so that the free() it
 * ends in is not recorded a second time. No return probe is needed: delete reaches
 * free by a tail call, and the entry is consumed there (ptr = 0; entries stay, like the
 * pending calls'). */
struct release_call {
	__u64 ptr;   /* 0: none */
	__u64 sp;
	__u64 ret;   /* return address at entry: the release is over once its slot differs */
};

/* Per process (tgid): the address of the kernel's return-probe trampoline, which the
 * return address of every call with a return probe is replaced by until it returns.
 * Learned by the recorder from the "[uprobes]" mapping; 0 or absent: not known yet. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} trampolines SEC(".maps");

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
	__type(value, struct ht_deferred_event); /* an event, and room for a deferred walk */
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
static __always_inline __u64 wakeup_flag(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									 : BPF_RB_NO_WAKEUP;
}

static __always_inline void emit(void *ctx, __u64 pid_tgid, __u32 kind, __u32 function,
				 __u64 address, __u64 size, enum ht_stack_at stack_at)
{
	if (stack_at == HT_STACK_NONE) {
		/* A release: the header alone, written in place in the ring. */
		struct ht_event *ev = bpf_ringbuf_reserve(&events, HT_EVENT_HEADER_SIZE, 0);
		if (!ev) {
			count_lost(kind);
			return;
		}
		ev->ts_ns = bpf_ktime_get_ns();
		ev->address = address;
		ev->size = size;
		ev->pid = pid_tgid >> 32;
		ev->tid = (__u32)pid_tgid;
		ev->kind = kind;
		ev->function = function;
		ev->stack_bytes = 0;
		bpf_ringbuf_submit(ev, wakeup_flag());
		return;
	}
	__u32 zero = 0;
	struct ht_deferred_event *d = bpf_map_lookup_elem(&scratch, &zero);
	if (!d)
		return;
	struct ht_event *ev = &d->event;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->address = address;
	ev->size = size;
	ev->pid = pid_tgid >> 32;
	ev->tid = (__u32)pid_tgid;
	ev->kind = kind;
	ev->function = function;
	long n = 0;
	__u32 stack_flags = 0;
	if (stack_at != HT_STACK_NONE) {
		__u32 frames = stack_depth < HT_MAX_STACK_DEPTH ? stack_depth : HT_MAX_STACK_DEPTH;
		n = capture_user_stack(ctx, ev->stack, frames, stack_at, &stack_flags);
	}
	if (n > sizeof(ev->stack))
		n = sizeof(ev->stack);
	ev->stack_bytes = n | stack_flags;

	__u64 bytes = HT_EVENT_HEADER_SIZE + n;
	/* A deferred walk carries a copy of the stack: never at the price of losing events
	 * when the ring is filling up (a burst before the recorder loaded a new library). */
	if ((stack_flags & HT_STACK_DEFERRED) &&
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > bpf_ringbuf_query(&events, BPF_RB_RING_SIZE) / 2) {
		stack_flags = (stack_flags & ~HT_STACK_DEFERRED) | HT_STACK_INCOMPLETE;
		ev->stack_bytes = n | stack_flags;
	}
	if (stack_flags & HT_STACK_DEFERRED) {
		fill_resume(&d->resume, d->stack);
		bytes = sizeof(struct ht_event) + sizeof(struct ht_resume) + (d->resume.stack_len & (HT_DEFER_STACK_BYTES * 2 - 1));
		/* The bound must be checked on `bytes` itself: clang would otherwise compare
		 * stack_len before the addition, which Linux 6.1's verifier does not carry over
		 * to the sum ("invalid access to map value" in bpf_ringbuf_output). */
		barrier_var(bytes);
		if (bytes > sizeof(*d))
			bytes = sizeof(*d);
	}
	if (bpf_ringbuf_output(&events, d, bytes, wakeup_flag()))
		count_lost(kind);
}

/* The stack of a release (free, delete) is only taken with --release-stacks. */
static __always_inline enum ht_stack_at release_stack_at(void)
{
	return release_stacks ? HT_STACK_AT_ENTRY : HT_STACK_NONE;
}

/* Argument `index` (0-3) of the probed call, wherever the probed instruction finds it:
 * a probe past the entry may see an argument moved to another register (the cookie
 * says which; recorder/probe_sites.h). */
static __always_inline __u64 argument(struct pt_regs *ctx, __u64 cookie, __u32 index)
{
	__u32 location = HT_COOKIE_LOCATION(cookie, index);
	if (!location) {
		switch (index) {
		case 0: return PT_REGS_PARM1(ctx);
		case 1: return PT_REGS_PARM2(ctx);
		case 2: return PT_REGS_PARM3(ctx);
		default: return PT_REGS_PARM4(ctx);
		}
	}
#if defined(__TARGET_ARCH_x86)
	/* Constant-offset loads from the context only (the verifier refuses a computed
	 * one), then an index into the copy. */
	__u64 regs[16] = {ctx->rax, ctx->rcx, ctx->rdx, ctx->rbx, ctx->rsp, ctx->rbp, ctx->rsi, ctx->rdi,
			  ctx->r8,  ctx->r9,  ctx->r10, ctx->r11, ctx->r12, ctx->r13, ctx->r14, ctx->r15};
	return regs[(location - 1) & 15];
#else
	return 0; /* the recorder only moves probes on x86-64 */
#endif
}

static __always_inline __u64 read_user_u64(__u64 address, bool *ok)
{
	__u64 value = 0;
	*ok = bpf_probe_read_user(&value, sizeof(value), (void *)address) == 0;
	return value;
}

/* Whether a pending call is still running: while it is, the slot of its return address
 * holds the return probe's trampoline. The original return address back in that slot
 * means the return probe never took it (attached after the call began, or the kernel
 * could not hijack it): that call's return will not be seen, and a new call has written
 * its own return address there. */
static __always_inline bool still_active(struct pending_call *p, __u32 tgid)
{
#if !HT_RETURN_ADDRESS_ON_STACK
	return true; /* arm: the return address is in the link register, not in a slot */
#endif
	bool ok;
	__u64 slot = read_user_u64(p->sp, &ok);
	if (!ok || slot == p->ret)
		return false;
	__u64 *trampoline = bpf_map_lookup_elem(&trampolines, &tgid);
	return !trampoline || !*trampoline || slot == *trampoline;
}

/* Whether the thread's pending call `outer` (its map entry, or NULL) is one that a
 * call entering with stack pointer `sp` runs inside of; a stale one is dropped. */
static __always_inline bool runs_inside(struct pending_call *outer, __u64 pid_tgid, __u64 sp)
{
	/* Nested calls run at or below the outer call's stack pointer (at it for a tail
	 * call). An entry above it means that call is gone without a return (longjmp, an
	 * exception): it is replaced. */
	if (!outer || !outer->sp || sp > outer->sp)
		return false;
	if (!still_active(outer, pid_tgid >> 32)) {
		outer->sp = 0;
		return false;
	}
	return true;
}

/* Records the entry of an allocator call (`sp`: the stack pointer at its entry).
 * Returns true for an outermost call, false for one nested in another allocator call
 * of the same thread. */
static __always_inline bool enter(__u64 pid_tgid, __u64 sp, __u32 kind, __u32 function, __u64 size, __u64 arg)
{
	__u32 tid = (__u32)pid_tgid;
	struct pending_call *p = bpf_map_lookup_elem(&pending, &tid);
	if (runs_inside(p, pid_tgid, sp)) {
		struct pending_call *outer = p;
		if (sp == outer->sp) {
			if (outer->tail < 255)
				outer->tail++;
		} else if (outer->deep < 255) {
			outer->deep++;
		}
		return false;
	}
	if (kind != HT_IGNORED &&
	    ((min_size && size < min_size) || (max_size && size > max_size)))
		kind = HT_IGNORED;
	bool ok;
	__u64 ret = read_user_u64(sp, &ok);
	if (p) {
		p->size = size;
		p->arg = arg;
		p->sp = sp;
		p->ret = ret;
		p->kind = kind;
		p->function = function;
		p->tail = 0;
		p->deep = 0;
	} else {
		struct pending_call call = {
			.size = size, .arg = arg, .sp = sp, .ret = ret, .kind = kind, .function = function};
		bpf_map_update_elem(&pending, &tid, &call, BPF_ANY);
	}
	return true;
}

/* True when the thread is inside an allocator call (its free/munmap is internal). */
static __always_inline bool nested(__u64 pid_tgid, __u64 sp)
{
	__u32 tid = (__u32)pid_tgid;
	return runs_inside(bpf_map_lookup_elem(&pending, &tid), pid_tgid, sp);
}

/* True when this release of `ptr` is part of one already recorded (delete -> free). */
static __always_inline bool in_release_of(__u32 tid, __u64 sp, __u64 ptr)
{
	struct release_call *r = bpf_map_lookup_elem(&releasing, &tid);
	if (!r || !ptr || r->ptr != ptr || sp > r->sp || sp + RELEASE_CHAIN_BYTES <= r->sp)
		return false;
#if !HT_RETURN_ADDRESS_ON_STACK
	return true;
#endif
	bool ok;
	return read_user_u64(r->sp, &ok) == r->ret && ok;
}

/* The return address of the probed call, whose stack pointer at entry was `entry_sp`:
 * at [entry_sp] on x86-64, in the link register on arm (where probes are always on the
 * first instruction). 0 when unreadable. */
static __always_inline __u64 return_address(struct pt_regs *ctx, __u64 entry_sp)
{
#if HT_RETURN_ADDRESS_ON_STACK
	bool ok;
	__u64 ret = read_user_u64(entry_sp, &ok);
	return ok ? ret : 0;
#else
	return ht_entry_return_address(ctx);
#endif
}

/* The probe address minus the probed instruction's ELF address is the object's load
 * bias. */
static __always_inline bool called_from_allocator(struct pt_regs *ctx, __u64 cookie, __u64 entry_sp,
						  __u64 site_vaddr)
{
	/* Only a probe in the C library whose addresses we were given gives its load bias. */
	if (!HT_COOKIE_IS_IN_LIBC(cookie) || !alloc_text_end || !site_vaddr)
		return false;
	__u64 ret = return_address(ctx, entry_sp);
	if (!ret)
		return false;
	__u64 caller = ret - (PT_REGS_IP(ctx) - site_vaddr);
	return caller >= alloc_text_start && caller < alloc_text_end;
}

/* Every allocator function's probe: its cookie says which function, what it makes and
 * how it passes its arguments (HT_COOKIE). */
SEC("uprobe")
int alloc_entry(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u32 tid = (__u32)pid_tgid;
	if (check_targets && !is_target(tgid))
		return 0;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 kind = HT_COOKIE_KIND(cookie);
	__u32 function = HT_COOKIE_FUNCTION(cookie);
	__u64 sp = PT_REGS_SP(ctx) + HT_COOKIE_STACK_BYTES(cookie);

	switch (HT_COOKIE_SHAPE(cookie)) {
	case HT_SHAPE_SIZE1:
		enter(pid_tgid, sp, kind, function, argument(ctx, cookie, 0), 0);
		break;
	case HT_SHAPE_SIZE2:
		enter(pid_tgid, sp, kind, function, argument(ctx, cookie, 1), 0);
		break;
	case HT_SHAPE_CALLOC:
		enter(pid_tgid, sp, kind, function, argument(ctx, cookie, 0) * argument(ctx, cookie, 1), 0);
		break;
	case HT_SHAPE_REALLOC: {
		__u64 ptr = argument(ctx, cookie, 0), size = argument(ctx, cookie, 1);
		if (enter(pid_tgid, sp, kind, function, size, 0) && ptr)
			emit(ctx, pid_tgid, HT_REALLOC_RELEASE, function, ptr, size, HT_STACK_NONE);
		break;
	}
	case HT_SHAPE_REALLOCARRAY: {
		__u64 ptr = argument(ctx, cookie, 0);
		__u64 size = argument(ctx, cookie, 1) * argument(ctx, cookie, 2);
		if (enter(pid_tgid, sp, kind, function, size, 0) && ptr)
			emit(ctx, pid_tgid, HT_REALLOC_RELEASE, function, ptr, size, HT_STACK_NONE);
		break;
	}
	case HT_SHAPE_POSIX_MEMALIGN:
		enter(pid_tgid, sp, kind, function, argument(ctx, cookie, 2), argument(ctx, cookie, 0));
		break;
	case HT_SHAPE_MMAP: {
		/* File mappings and libc's own are not the program's heap; they still take a
		 * slot so that the return probe pairs with the right call. */
		bool heap = (argument(ctx, cookie, 3) & MAP_ANONYMOUS) && !called_from_allocator(ctx, cookie, sp, mmap_vaddr);
		enter(pid_tgid, sp, heap ? kind : HT_IGNORED, function, argument(ctx, cookie, 1), 0);
		break;
	}
	case HT_SHAPE_MUNMAP:
		if (nested(pid_tgid, sp) || called_from_allocator(ctx, cookie, sp, munmap_vaddr))
			break;
		emit(ctx, pid_tgid, kind, function, argument(ctx, cookie, 0), argument(ctx, cookie, 1), HT_STACK_NONE);
		break;
	case HT_SHAPE_FREE: {
		/* free(): the end of every release chain. */
		__u64 ptr = argument(ctx, cookie, 0);
		if (!ptr || nested(pid_tgid, sp))
			break;
		if (in_release_of(tid, sp, ptr)) {
			struct release_call *r = bpf_map_lookup_elem(&releasing, &tid);
			if (r)
				r->ptr = 0;
			break;
		}
		/* Whether the library frees a block of the program's (fclose) or its own cache
		 * entry (glibc's tcache at thread exit) is only known from the live blocks, in the
		 * analyzer: say who called. */
		if (kind == HT_FREE && called_from_allocator(ctx, cookie, sp, free_vaddr))
			kind = HT_LIBC_FREE;
		emit(ctx, pid_tgid, kind, function, ptr, 0, release_stack_at());
		break;
	}
	case HT_SHAPE_RELEASE: {
		/* operator delete/delete[] (all variants) and custom frees: they end in free(). */
		__u64 ptr = argument(ctx, cookie, 0);
		if (!ptr || nested(pid_tgid, sp) || in_release_of(tid, sp, ptr))
			break;
		__u64 ret = return_address(ctx, sp);
		struct release_call *r = bpf_map_lookup_elem(&releasing, &tid);
		if (r) {
			r->ptr = ptr;
			r->sp = sp;
			r->ret = ret;
		} else {
			struct release_call call = {.ptr = ptr, .sp = sp, .ret = ret};
			bpf_map_update_elem(&releasing, &tid, &call, BPF_ANY);
		}
		emit(ctx, pid_tgid, kind, function, ptr, 0, release_stack_at());
		break;
	}
	case HT_SHAPE_ALLOCATOR_FREE: {
		/* free/delete of an allocator library: the end of a release chain like libc's
		 * free, but one that may run through several of its exported functions
		 * (mi_free_size -> mi_free): it takes a pending slot, so those it calls are
		 * nested, and its return probe ends it. */
		__u64 ptr = argument(ctx, cookie, 0);
		if (!enter(pid_tgid, sp, HT_IGNORED, function, 0, 0) || !ptr)
			break;
		if (in_release_of(tid, sp, ptr)) {
			/* libstdc++'s delete recorded it already and ends here */
			struct release_call *r = bpf_map_lookup_elem(&releasing, &tid);
			if (r)
				r->ptr = 0;
			break;
		}
		emit(ctx, pid_tgid, kind, function, ptr, 0, release_stack_at());
		break;
	}
	}
	return 0;
}

/* One return probe serves every allocating function: the entry state says which. */
SEC("uretprobe")
int BPF_KRETPROBE(alloc_return, __u64 ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct pending_call *p = bpf_map_lookup_elem(&pending, &tid);
	if (!p || !p->sp)
		return 0;
	/* The stack pointer after a return: one slot above the return address's on x86-64,
	 * the entry's on arm. */
	__u64 slot = PT_REGS_SP(ctx) - (HT_RETURN_ADDRESS_ON_STACK ? 8 : 0);
	if (slot > p->sp) {
		/* A call above the pending one returns: that one is long gone. */
		p->sp = 0;
		return 0;
	}
	if (slot < p->sp) {
		if (p->deep)
			p->deep--;
		return 0;
	}
	if (p->tail) {
		p->tail--;
		return 0;
	}
	struct pending_call call = *p;
	p->sp = 0;

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
