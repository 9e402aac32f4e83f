/* Capturing the user stack of an allocator call, for the BPF programs. This is the seam
 * where stack walkers plug in: the probes only say where they are (ht_stack_at). */
#ifndef HEAPTRAIL_USER_STACK_H
#define HEAPTRAIL_USER_STACK_H

#include "heaptrail_arch.h"
#include "unwind_fp.h"

/* Where a probe takes the stack, which decides what frame 0 is. */
enum ht_stack_at {
	HT_STACK_NONE = 0,
	/* At a return probe: ip is the return address into the allocator's caller. */
	HT_STACK_AT_RETURN = 1,
	/* At a function's first instruction: the return address into the caller is at [sp]
	 * on x86-64, in the link register on arm (not yet in the frame chain, so a
	 * frame-pointer walk alone would miss it). */
	HT_STACK_AT_ENTRY = 2,
};

/* Fills out[] with at most max_frames return addresses, innermost first. Returns the
 * number of bytes written (a multiple of 8), 0 when nothing could be captured. */
static __always_inline long capture_user_stack(struct pt_regs *regs, __u64 *out, __u32 max_frames,
					       enum ht_stack_at at)
{
	/* Registers first: the verifier wants plain loads from the context. */
	__u64 ip = PT_REGS_IP(regs);
	__u64 sp = PT_REGS_SP(regs);
	__u64 fp = PT_REGS_FP(regs);
#if HT_RETURN_ADDRESS_ON_STACK
	out[0] = ip;
	const bool ra_at_sp = at == HT_STACK_AT_ENTRY;
#else
	__u64 link = HT_STRIP_RETURN_ADDRESS(PT_REGS_RET(regs));
	out[0] = at == HT_STACK_AT_ENTRY ? link : ip;
	const bool ra_at_sp = false;
#endif
#if !HT_FRAME_POINTER_WALK
	return sizeof(__u64); /* 32-bit arm: the allocator's immediate caller only */
#endif
	long frames = unwind_fp(sp, fp, out, max_frames, ra_at_sp);
	if (frames >= 0)
		return frames * sizeof(__u64);

	/* The top of the stack could not be copied (it ends within the window): let the
	 * kernel walk it. */
	long n = bpf_get_stack(regs, out, max_frames * sizeof(__u64), BPF_F_USER_STACK);
	if (n < 0)
		return 0;
	if (at == HT_STACK_AT_ENTRY && n >= sizeof(__u64) && !(out[0] = ht_entry_return_address(regs)))
		return 0;
	return n;
}

#endif
