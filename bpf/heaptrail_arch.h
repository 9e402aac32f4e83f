/* What differs between the architectures the allocator probes run on: how user registers
 * are read, where a function's return address is at its first instruction, how wide a
 * user pointer is, and whether the user stack can be walked. Include it instead
 * of <bpf/bpf_tracing.h>; the object is compiled with -D__TARGET_ARCH_{x86,arm64,arm}
 * and the target's UAPI headers (asm/ptrace.h).
 *
 *            arguments  return value  return address at entry  frame record at fp
 *   x86-64   rdi rsi..  rax           [rsp]                    {saved rbp, return}
 *   arm64    x0 x1 ...  x0            x30 (lr)                 {saved x29, saved x30}
 *   arm      r0 r1 ...  r0            r14 (lr)                 none usable (see below)
 */
#ifndef HEAPTRAIL_ARCH_H
#define HEAPTRAIL_ARCH_H

#if defined(__TARGET_ARCH_arm)
/* libbpf's arm macros index the UAPI `long uregs[18]`, whose long is 8 bytes when compiled
 * for BPF, and name r12 as the pc. The kernel hands a uprobe program arm's pt_regs: 18
 * 32-bit registers, r15 the pc. */
struct ht_arm_user_regs {
	__u32 uregs[18];
};
#define __PT_REGS_CAST(x) ((const struct ht_arm_user_regs *)(x))
#endif

#include <bpf/bpf_tracing.h>

#if defined(__TARGET_ARCH_arm)
#undef __PT_IP_REG
#define __PT_IP_REG uregs[15]
#undef __PT_FP_REG
#define __PT_FP_REG uregs[7] /* GCC's Thumb-2 frame pointer; unused: no walk on arm */
/* BPF_KPROBE passes each 32-bit register through (void *): zero-extended, as wanted. */
#pragma clang diagnostic ignored "-Wint-to-void-pointer-cast"
#endif

#if defined(__TARGET_ARCH_x86)
#define HT_USER_POINTER_BYTES 8
#define HT_RETURN_ADDRESS_ON_STACK 1
#define HT_STACK_WALK 1
#elif defined(__TARGET_ARCH_arm64)
#define HT_USER_POINTER_BYTES 8
#define HT_RETURN_ADDRESS_ON_STACK 0
#define HT_STACK_WALK 1
#elif defined(__TARGET_ARCH_arm)
#define HT_USER_POINTER_BYTES 4
#define HT_RETURN_ADDRESS_ON_STACK 0
/* GCC's 32-bit frames have no fixed record: in Thumb-2 code r7 points below the locals,
 * not at the saved {r7, lr}, and in ARM code the layout depends on -mapcs-frame. Stacks
 * on arm are the allocator's immediate caller only. */
#define HT_STACK_WALK 0
#else
#error "heaptrail's BPF programs support __TARGET_ARCH_x86, __TARGET_ARCH_arm64 and __TARGET_ARCH_arm"
#endif

/* mmap's MAP_FAILED, (void *)-1, as the return register holds it. */
#if HT_USER_POINTER_BYTES == 8
#define HT_MAP_FAILED 0xffffffffffffffffULL
#else
#define HT_MAP_FAILED 0xffffffffULL
#endif

/* Return addresses that arm64 code saved with pointer authentication (paciasp) carry a
 * signature in their top bits; user addresses fit in 48 bits. */
#if defined(__TARGET_ARCH_arm64)
#define HT_STRIP_RETURN_ADDRESS(addr) ((addr) & 0x0000ffffffffffffULL)
#else
#define HT_STRIP_RETURN_ADDRESS(addr) (addr)
#endif

/* The return address of a function stopped at its first instruction (an entry probe).
 * Returns 0 when it cannot be read. */
static __always_inline __u64 ht_entry_return_address(struct pt_regs *regs)
{
#if HT_RETURN_ADDRESS_ON_STACK
	__u64 ret = 0;
	if (bpf_probe_read_user(&ret, sizeof(ret), (void *)PT_REGS_SP(regs)))
		return 0;
	return ret;
#else
	__u64 ret = PT_REGS_RET(regs);
	return HT_STRIP_RETURN_ADDRESS(ret);
#endif
}

#endif
