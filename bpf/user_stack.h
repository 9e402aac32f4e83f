/* Capturing the user stack of an allocator call, for the BPF programs. This is the seam
 * where stack walkers plug in: the probes only say where they are (ht_stack_at). */
#ifndef HEAPTRAIL_USER_STACK_H
#define HEAPTRAIL_USER_STACK_H

#include "heaptrail_arch.h"
/* The walker (unwind tables, frame pointers in files without them) on x86-64 and arm64;
 * its maps are defined on every architecture (the recorder fills them). */
#include "unwind_cfi.h"

/* Where a probe takes the stack, which decides what frame 0 is. */
enum ht_stack_at {
	HT_STACK_NONE = 0,
	/* At a return probe: ip is the return address into the allocator's caller. */
	HT_STACK_AT_RETURN = 1,
	/* Inside the allocator function: at its first instruction, or further in when the
	 * probe was placed past instructions the kernel would single-step (the CFI rules of
	 * the probed pc account for what the function pushed). The return address into the
	 * caller is at the CFA - 8 on x86-64, in the link register on arm (not yet in the
	 * frame chain, so a frame-pointer walk alone would miss it). */
	HT_STACK_AT_ENTRY = 2,
};

/* Fills out[] with at most max_frames return addresses, innermost first. Returns the
 * number of bytes written (a multiple of 8), 0 when nothing could be captured; *flags
 * gets HT_STACK_INCOMPLETE / HT_STACK_DEFERRED (bpf/unwind_cfi.h). */
static __always_inline long capture_user_stack(struct pt_regs *regs, __u64 *out, __u32 max_frames,
					       enum ht_stack_at at, __u32 *flags)
{
	/* Registers first: the verifier wants plain loads from the context. */
	__u64 ip = PT_REGS_IP(regs);
	__u64 sp = PT_REGS_SP(regs);
	__u64 fp = PT_REGS_FP(regs);
	*flags = 0;
#if HT_RETURN_ADDRESS_ON_STACK
	const bool ip_is_return = at == HT_STACK_AT_RETURN;
#else
	__u64 link = HT_STRIP_RETURN_ADDRESS(PT_REGS_RET(regs));
	if (at == HT_STACK_AT_ENTRY)
		ip = link;
	const bool ip_is_return = true;
#endif
#if !HT_STACK_WALK
	(void)sp, (void)fp, (void)ip_is_return, (void)max_frames, (void)flags;
	out[0] = ip;
	return sizeof(__u64); /* 32-bit arm: the allocator's immediate caller only */
#else
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	return unwind_cfi(tgid, ip, sp, fp, ip_is_return, out, max_frames, flags) * sizeof(__u64);
#endif
}

#endif
