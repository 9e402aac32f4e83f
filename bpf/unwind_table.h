/* Unwind tables compiled from call-frame information (recorder/unwind/), and the
 * per-process lookup of the mappings that use them: the layout shared by the BPF walker
 * (unwind_cfi.h) and the recorder, libbpf-tools style.
 *
 * A table belongs to one ELF file (one per build-id). It is a sorted array of rows;
 * a row holds from its pc up to the next row's pc, and says for x86-64 how the caller's
 * frame is found there:
 *   CFA (the stack pointer before the call) = rsp + offset | rbp + offset,
 *   the return address at CFA - 8,
 *   the caller's rbp unchanged or saved at CFA - 8 * n.
 * Row pcs are ELF virtual addresses minus the table's base (the lowest address of the
 * file's executable segments), so that they fit 32 bits. */
#ifndef HEAPTRAIL_UNWIND_TABLE_H
#define HEAPTRAIL_UNWIND_TABLE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* How the CFA is computed at a row (bits 0-1 of the rule). */
#define HT_CFA_RSP 0u
#define HT_CFA_RBP 1u
/* The outermost frame (the return address is undefined: _start, thread starts): the
 * stack is complete here. */
#define HT_CFA_STOP 2u
/* Nothing the walker can follow: no CFI for this pc, a DWARF expression (PLT entries,
 * signal frames), a register other than rsp/rbp: the stack stops, incomplete. */
#define HT_CFA_UNSUPPORTED 3u

/* Where the caller's rbp is (bits 2-11): unchanged, saved at CFA - 8 * n (1 <= n <
 * HT_RBP_UNKNOWN), or not recoverable. */
#define HT_RBP_UNCHANGED 0u
#define HT_RBP_UNKNOWN 1023u
/* Bits 12-31: the CFA offset in bytes. */
#define HT_CFA_OFFSET_LIMIT (1u << 20)

#define HT_RULE(cfa_kind, cfa_offset, rbp_slots)                                           \
	((__u32)(cfa_kind) | ((__u32)(rbp_slots) << 2) | ((__u32)(cfa_offset) << 12))
#define HT_RULE_CFA_KIND(rule) ((rule) & 3u)
#define HT_RULE_RBP_SLOTS(rule) (((rule) >> 2) & 1023u)
#define HT_RULE_CFA_OFFSET(rule) ((rule) >> 12)

struct ht_unwind_row {
	__u32 pc;   /* ELF virtual address - table base */
	__u32 rule; /* HT_RULE */
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
