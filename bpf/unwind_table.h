/* Unwind tables compiled from call-frame information (recorder/unwind/), and the
 * per-process lookup of the mappings that use them: the layout shared by the BPF walker
 * (unwind_cfi.h) and the recorder, libbpf-tools style.
 *
 * A table belongs to one ELF file (one per build-id). It is a sorted array of rows;
 * a row holds from its pc up to the next row's pc, and its 32-bit rule says how the
 * caller's frame is found there. The rule's meaning depends on the file's architecture
 * (a table is compiled for the architecture the recorder runs on):
 *
 *   x86-64 (HT_RULE)                          AArch64 (HT_A64_RULE)
 *   CFA = rsp + offset | rbp + offset         CFA = sp + offset | x29 + offset
 *   return address at CFA - 8                 return address (x30) at CFA - 8 * n, or
 *                                             still in x30 (n = 0: the innermost frame)
 *   the caller's rbp unchanged, saved at      the caller's x29 unchanged, saved just below
 *   CFA - 8 * n, or lost                      x30 (the frame record {x29, x30}), or lost
 *
 * The CFA is the stack pointer before the call. Bits 0-1 (the CFA kind) mean the same on
 * both, so do whole rules HT_CFA_STOP and HT_CFA_UNSUPPORTED; the walker reads the
 * other fields through ht_rule_fields. Row pcs are ELF virtual addresses minus the
 * table's base (the lowest address of the file's executable segments), so that they fit
 * 32 bits. */
#ifndef HEAPTRAIL_UNWIND_TABLE_H
#define HEAPTRAIL_UNWIND_TABLE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* How the CFA is computed at a row (bits 0-1 of the rule): from the stack pointer
 * (rsp, sp) or the frame pointer (rbp, x29). */
#define HT_CFA_RSP 0u
#define HT_CFA_RBP 1u
/* The outermost frame (the return address is undefined: _start, thread starts): the
 * stack is complete here. */
#define HT_CFA_STOP 2u
/* Nothing the walker can follow: no CFI for this pc, a DWARF expression (PLT entries,
 * signal frames), a register other than the stack or frame pointer, a return address
 * the rule cannot place: the stack stops, incomplete. */
#define HT_CFA_UNSUPPORTED 3u
#define HT_RULE_CFA_KIND(rule) ((rule) & 3u)

/* x86-64. Where the caller's rbp is (bits 2-11): unchanged, saved at CFA - 8 * n
 * (1 <= n < HT_RBP_UNKNOWN), or not recoverable. Bits 12-31: the CFA offset in bytes. */
#define HT_RBP_UNCHANGED 0u
#define HT_RBP_UNKNOWN 1023u
#define HT_CFA_OFFSET_LIMIT (1u << 20)

#define HT_RULE(cfa_kind, cfa_offset, rbp_slots)                                           \
	((__u32)(cfa_kind) | ((__u32)(rbp_slots) << 2) | ((__u32)(cfa_offset) << 12))
#define HT_RULE_RBP_SLOTS(rule) (((rule) >> 2) & 1023u)
#define HT_RULE_CFA_OFFSET(rule) ((rule) >> 12)

/* AArch64. Bits 2-3: the caller's x29. GCC and LLVM save x29 and x30 together (stp) as
 * the frame record, x29 at the lower address; x29 saved anywhere else is taken as lost.
 * Bits 4-15: x30 saved at CFA - 8 * n (1 <= n < HT_A64_LR_LIMIT), or n = 0: not saved,
 * still in the link register, which only the innermost frame can use. Bits 16-31: the
 * CFA offset in 8-byte units (it is a multiple of 16 in practice: sp stays aligned). */
#define HT_A64_FP_UNCHANGED 0u
#define HT_A64_FP_BELOW_LR 1u /* at CFA - 8 * (n + 1), n the x30 slot */
#define HT_A64_FP_UNKNOWN 2u
#define HT_A64_LR_IN_REGISTER 0u
#define HT_A64_LR_LIMIT (1u << 12)
#define HT_A64_CFA_OFFSET_LIMIT (8u << 16)

#define HT_A64_RULE(cfa_kind, cfa_offset, fp, lr_slots)                                     \
	((__u32)(cfa_kind) | ((__u32)(fp) << 2) | ((__u32)(lr_slots) << 4) | (((__u32)(cfa_offset) / 8) << 16))
#define HT_A64_RULE_FP(rule) (((rule) >> 2) & 3u)
#define HT_A64_RULE_LR_SLOTS(rule) (((rule) >> 4) & 4095u)
#define HT_A64_RULE_CFA_OFFSET(rule) (((rule) >> 16) * 8)

/* A rule's fields, whatever the architecture. */
#define HT_FRAME_FP_UNKNOWN 0xffffffffu
struct ht_frame_rule {
	__u32 cfa_kind;   /* HT_CFA_* */
	__u32 cfa_offset; /* bytes */
	__u32 fp_slots;   /* the caller's frame pointer: 0 unchanged, at CFA - 8 * n, or
			   * HT_FRAME_FP_UNKNOWN */
	__u32 ra_slots;   /* the return address at CFA - 8 * n; 0: in the link register */
};

#if defined(__bpf__)
#define HT_RULE_FN static __always_inline
#else
#define HT_RULE_FN static inline
#endif

HT_RULE_FN struct ht_frame_rule ht_x86_64_rule_fields(__u32 rule)
{
	struct ht_frame_rule f;
	__u32 rbp = HT_RULE_RBP_SLOTS(rule);
	f.cfa_kind = HT_RULE_CFA_KIND(rule);
	f.cfa_offset = HT_RULE_CFA_OFFSET(rule);
	f.fp_slots = rbp == HT_RBP_UNKNOWN ? HT_FRAME_FP_UNKNOWN : rbp;
	f.ra_slots = 1;
	return f;
}

HT_RULE_FN struct ht_frame_rule ht_aarch64_rule_fields(__u32 rule)
{
	struct ht_frame_rule f;
	__u32 fp = HT_A64_RULE_FP(rule);
	f.cfa_kind = HT_RULE_CFA_KIND(rule);
	f.cfa_offset = HT_A64_RULE_CFA_OFFSET(rule);
	f.ra_slots = HT_A64_RULE_LR_SLOTS(rule);
	f.fp_slots = fp == HT_A64_FP_UNCHANGED                        ? 0
		     : fp == HT_A64_FP_BELOW_LR && f.ra_slots != 0 ? f.ra_slots + 1
								   : HT_FRAME_FP_UNKNOWN;
	return f;
}

/* The BPF walker's own architecture. */
#if defined(__TARGET_ARCH_arm64)
#define ht_rule_fields ht_aarch64_rule_fields
#else
#define ht_rule_fields ht_x86_64_rule_fields
#endif

struct ht_unwind_row {
	__u32 pc;   /* ELF virtual address - table base */
	__u32 rule; /* HT_RULE or HT_A64_RULE */
};

/* Binary search steps per frame: tables hold at most 2^HT_UNWIND_SEARCH_STEPS rows. */
#define HT_UNWIND_SEARCH_STEPS 22
#define HT_UNWIND_MAX_ROWS (1u << HT_UNWIND_SEARCH_STEPS)
/* Tables loaded at once (the outer array's size). */
#define HT_UNWIND_MAX_TABLES 4096

/* What the walker does in an executable mapping (ht_unwind_mapping.kind). */
#define HT_MAPPING_TABLE 1u        /* unwind with table `table` */
#define HT_MAPPING_FRAME_POINTER 2u /* no CFI in the file (or --stack-mode fp): frame pointers */
#define HT_MAPPING_STOP 3u          /* a valid frame, but nothing to unwind it with (cfi mode) */

/* Key of the pid -> mapping lookup, an LPM trie: pid and address big-endian, so that an
 * address range splits into a few prefixes. prefixlen counts the pid's 32 bits too. */
struct ht_mapping_key {
	__u32 prefixlen;
	__u32 pid_be;
	__u64 address_be;
};

struct ht_unwind_mapping {
	__u64 bias;  /* row pc = address - bias */
	__u32 kind;  /* HT_MAPPING_* */
	__u32 table; /* index in the table array (HT_MAPPING_TABLE) */
	__u32 rows;  /* rows in that table */
	__u32 reserved;
};

/* The files whose tables are loaded, by build-id: the walker's own lookup of a mapping
 * the recorder has not reported yet (unwind_cfi.h, resolve_new_mapping). */
#define HT_BUILD_ID_BYTES 20
struct ht_build_id_key {
	__u32 size;
	__u8 bytes[HT_BUILD_ID_BYTES];
};
struct ht_unwind_file {
	__u64 base;  /* the table's base: row pc = ELF virtual address - base */
	__u32 kind;  /* HT_MAPPING_* */
	__u32 table; /* HT_MAPPING_TABLE: index in the table array */
	__u32 rows;
	__u32 reserved;
};

/* What the walker does when a pc is in no mapping the recorder has reported yet
 * (rodata unwind_new_mappings). */
#define HT_NEW_MAPPINGS_DEFER 0  /* stop, the recorder finishes the walk (no bpf_find_vma) */
#define HT_NEW_MAPPINGS_TABLES 1 /* find the ELF file in memory, its table by build-id */
#define HT_NEW_MAPPINGS_FRAME_POINTERS 2 /* --stack-mode fp: any executable ELF segment */

#endif
