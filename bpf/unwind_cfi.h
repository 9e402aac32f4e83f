/* The user stack walk by unwind tables (bpf/unwind_table.h), for the BPF programs
 * (included by user_stack.h). Per frame: the mapping of the pc in the process (an LPM
 * trie the recorder keeps current from its mapping tracking), then either a binary
 * search of that file's table (CFA from the stack or frame pointer, the return address
 * and the caller's frame pointer at CFA - 8 * n: bpf/unwind_table.h, x86-64 or AArch64)
 * or, in a file without CFI, one step of the frame-pointer chain (the frame record
 * {saved fp, return address} at the frame pointer, on both). Whatever cannot be
 * followed stops the walk and marks the stack incomplete. A return address is emitted only once its own mapping is found: no
 * frame outside an executable mapping. A pc whose mapping is not in the trie yet (a
 * library mapped a moment ago) defers the rest of the walk to the recorder, with a copy
 * of the top of the stack (recorder/unwind/deferred_walk.h). */
#ifndef HEAPTRAIL_UNWIND_CFI_H
#define HEAPTRAIL_UNWIND_CFI_H

#include <bpf/bpf_endian.h>

#include "unwind_table.h"

/* One table's rows (inner maps of unwind_tables, each sized to its table). */
struct unwind_rows {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* replaced per table: BPF_F_INNER_MAP */
	__uint(map_flags, BPF_F_INNER_MAP);
	/* Sizes, not types: clang's BTF would only hold a forward declaration of the row. */
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct ht_unwind_row));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, HT_UNWIND_MAX_TABLES);
	__type(key, __u32);
	__array(values, struct unwind_rows);
} unwind_tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1 << 16); /* prefixes of the executable mappings of all targets */
	__type(key, struct ht_mapping_key);
	__type(value, struct ht_unwind_mapping);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} unwind_mappings SEC(".maps");

/* A frame record cannot be further above the stack pointer than this. */
#define HT_MAX_FRAME_BYTES (8u << 20)

static __always_inline struct ht_unwind_mapping *find_mapping(__u32 tgid, __u64 address)
{
	struct ht_mapping_key key = {
		.prefixlen = 32 + 64,
		.pid_be = bpf_htonl(tgid),
		.address_be = bpf_cpu_to_be64(address),
	};
	return bpf_map_lookup_elem(&unwind_mappings, &key);
}

/* The rule of the last row at or below `pc` in table `index` of `count` rows;
 * HT_CFA_UNSUPPORTED when there is none. */
static __noinline __u32 find_rule(__u32 index, __u32 count, __u32 pc)
{
	void *rows = bpf_map_lookup_elem(&unwind_tables, &index);
	if (!rows || count == 0)
		return HT_RULE(HT_CFA_UNSUPPORTED, 0, 0);
	__u32 lo = 0, hi = count;
	for (int step = 0; step < HT_UNWIND_SEARCH_STEPS; step++) {
		if (hi - lo <= 1)
			break;
		__u32 mid = lo + (hi - lo) / 2;
		struct ht_unwind_row *row = bpf_map_lookup_elem(rows, &mid);
		if (!row)
			return HT_RULE(HT_CFA_UNSUPPORTED, 0, 0);
		if (row->pc <= pc)
			lo = mid;
		else
			hi = mid;
	}
	struct ht_unwind_row *row = bpf_map_lookup_elem(rows, &lo);
	if (!row || row->pc > pc)
		return HT_RULE(HT_CFA_UNSUPPORTED, 0, 0);
	return row->rule;
}

static __always_inline bool read_user_word(__u64 address, __u64 *value)
{
	return bpf_probe_read_user(value, sizeof(*value), (void *)address) == 0;
}

/* The walk between frames, per CPU: a global function steps it one frame at a time, so
 * that the verifier checks one step once rather than every unrolled frame of every
 * caller (the kernel's complexity limit). */
struct unwind_walk {
	__u64 pc, sp, bp;
	__u32 tgid;
	__u32 n;          /* frames in frames[] */
	__u32 max_frames;
	__u32 flags;      /* HT_STACK_INCOMPLETE, HT_STACK_DEFERRED */
	__u32 step;       /* frames stepped so far */
	__u8 bp_known;
	__u8 pending;     /* pc is a return address, emitted once its mapping is found */
	__u8 ip_is_return;
	__u8 reserved;
	__u64 frames[HT_MAX_STACK_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct unwind_walk);
} unwind_walks SEC(".maps");

/* Set by the recorder before load (HT_NEW_MAPPINGS_*): whether the kernel has
 * bpf_find_vma (5.17+, with BTF) for resolve_new_mapping. */
const volatile __u32 unwind_new_mappings = HT_NEW_MAPPINGS_DEFER;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HT_UNWIND_MAX_TABLES);
	__type(key, struct ht_build_id_key);
	__type(value, struct ht_unwind_file);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} unwind_files SEC(".maps");

/* ELF, as much as resolve_new_mapping reads of it (64-bit little-endian). */
#define HT_ELF_MAGIC 0x464c457fu /* "\x7fELF" */
#define HT_ELF_MAX_PHDRS 16
#define HT_ELF_MAX_NOTES 4 /* notes read per PT_NOTE segment */
#define HT_PT_LOAD 1
#define HT_PT_NOTE 4
#define HT_PF_X 1
#define HT_NT_GNU_BUILD_ID 3
#if defined(__TARGET_ARCH_arm64)
#define HT_ELF_MACHINE 183 /* EM_AARCH64 */
#else
#define HT_ELF_MACHINE 62 /* EM_X86_64 */
#endif
struct ht_elf64_ehdr {
	__u8 ident[16];
	__u16 type, machine;
	__u32 version;
	__u64 entry, phoff, shoff;
	__u32 flags;
	__u16 ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
struct ht_elf64_phdr {
	__u32 type, flags;
	__u64 offset, vaddr, paddr, filesz, memsz, align;
};
struct ht_elf_note_header {
	__u32 namesz, descsz, type;
	char name[4];
};

/* `found` first: unwind_step takes its address only after a null check, and clang may
 * compute a member's address before it, which Linux 6.1's verifier refuses ("pointer
 * arithmetic on map_value_or_null prohibited"). At offset 0 there is nothing to add. */
struct new_mapping_scratch {
	struct ht_unwind_mapping found;
	struct ht_elf64_ehdr ehdr;
	struct ht_elf64_phdr phdrs[HT_ELF_MAX_PHDRS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct new_mapping_scratch);
} new_mapping_scratch SEC(".maps");

struct vma_range {
	__u64 start, end;
};

struct task_struct;
struct vm_area_struct;

/* vm_start and vm_end are the first fields of struct vm_area_struct on every kernel
 * with bpf_find_vma: read by offset, without CO-RE (which would load vmlinux's BTF into
 * the recorder). The caller checks that the range holds the address. */
static long vma_range_of(struct task_struct *task, struct vm_area_struct *vma, struct vma_range *range)
{
	bpf_probe_read_kernel(range, sizeof(*range), vma);
	return 0;
}

/* What resolve_new_mapping learns from the program headers (bpf_loop callbacks: each is
 * verified once, not once per unrolled iteration). */
struct elf_scan {
	__u64 address, base, bias;
	__u8 first_load;  /* no PT_LOAD seen yet */
	__u8 executable;  /* the address is in an executable PT_LOAD */
	__u8 malformed;
	__u8 reserved;
	struct ht_build_id_key key;
};

/* Program header `i` of the copy in new_mapping_scratch. */
static __always_inline struct ht_elf64_phdr *program_header(__u32 i)
{
	__u32 zero = 0;
	struct new_mapping_scratch *s = bpf_map_lookup_elem(&new_mapping_scratch, &zero);
	if (!s)
		return NULL;
	/* An index the verifier can bound: the compiler would drop a plain range check's
	 * effect on the register it indexes with. */
	barrier_var(i);
	return &s->phdrs[i & (HT_ELF_MAX_PHDRS - 1)];
}

static long scan_load_segment(__u32 i, struct elf_scan *scan)
{
	struct ht_elf64_phdr *ph = program_header(i);
	if (!ph)
		return 1;
	if (ph->type != HT_PT_LOAD)
		return 0;
	/* The load bias: the first PT_LOAD (file offset 0, the header) is at base. */
	if (scan->first_load) {
		if (ph->offset != 0) {
			scan->malformed = 1;
			return 1;
		}
		scan->bias = scan->base - (ph->vaddr & ~0xfffull);
		scan->first_load = 0;
	}
	__u64 start = scan->bias + ph->vaddr;
	if ((ph->flags & HT_PF_X) && scan->address >= start && scan->address - start < ph->memsz)
		scan->executable = 1;
	return 0;
}

static long scan_note_segment(__u32 i, struct elf_scan *scan)
{
	struct ht_elf64_phdr *ph = program_header(i);
	if (!ph)
		return 1;
	if (ph->type != HT_PT_NOTE)
		return 0;
	__u64 note = scan->bias + ph->vaddr, end = note + ph->filesz;
	for (int n = 0; n < HT_ELF_MAX_NOTES; n++) {
		struct ht_elf_note_header h;
		if (note + sizeof(h) > end || bpf_probe_read_user(&h, sizeof(h), (void *)note))
			return 0;
		if (h.type == HT_NT_GNU_BUILD_ID && h.namesz == 4 && h.name[0] == 'G' && h.name[1] == 'N' &&
		    h.name[2] == 'U' && h.descsz > 0 && h.descsz <= HT_BUILD_ID_BYTES) {
			__u32 size = h.descsz;
			if (!bpf_probe_read_user(scan->key.bytes, size, (void *)(note + 16)))
				scan->key.size = size;
			return 1;
		}
		note += 12 + ((h.namesz + 3) & ~3u) + ((h.descsz + 3) & ~3u);
	}
	return 0;
}

/* Where `address` (in the current process) is in an ELF file the recorder has a table
 * for, found without the recorder: the mapping (bpf_find_vma), the ELF header at its
 * start or at the start of the mapping before it (ld.so and the kernel map a file's
 * segments next to each other, the header in the first), the executable PT_LOAD holding
 * the address, and the file's build-id from its PT_NOTE segments. This is how a library
 * mapped a moment ago is walked before the recorder has read its mapping record.
 * Fills new_mapping_scratch.found; returns 1 when found. */
__noinline int resolve_new_mapping(__u64 address)
{
	__u32 zero = 0;
	struct new_mapping_scratch *s = bpf_map_lookup_elem(&new_mapping_scratch, &zero);
	if (!s || unwind_new_mappings == HT_NEW_MAPPINGS_DEFER)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct vma_range vma = {};
	if (bpf_find_vma(task, address, vma_range_of, &vma, 0) || address < vma.start || address >= vma.end)
		return 0;
	struct elf_scan scan = {.address = address, .base = vma.start, .first_load = 1};
	__u32 magic = 0;
	if (bpf_probe_read_user(&magic, sizeof(magic), (void *)scan.base) || magic != HT_ELF_MAGIC) {
		struct vma_range before = {};
		if (vma.start == 0 || bpf_find_vma(task, vma.start - 1, vma_range_of, &before, 0) ||
		    before.end != vma.start || before.start >= vma.start)
			return 0;
		scan.base = before.start;
		if (bpf_probe_read_user(&magic, sizeof(magic), (void *)scan.base) || magic != HT_ELF_MAGIC)
			return 0;
	}
	if (bpf_probe_read_user(&s->ehdr, sizeof(s->ehdr), (void *)scan.base))
		return 0;
	/* 64-bit, little-endian, this architecture's */
	if (s->ehdr.ident[4] != 2 || s->ehdr.ident[5] != 1 || s->ehdr.machine != HT_ELF_MACHINE ||
	    s->ehdr.phentsize != sizeof(struct ht_elf64_phdr))
		return 0;
	__u32 phnum = s->ehdr.phnum;
	if (phnum == 0 || phnum > HT_ELF_MAX_PHDRS)
		return 0;
	if (bpf_probe_read_user(s->phdrs, phnum * sizeof(struct ht_elf64_phdr), (void *)(scan.base + s->ehdr.phoff)))
		return 0;
	bpf_loop(phnum, scan_load_segment, &scan, 0);
	if (scan.malformed || scan.first_load || !scan.executable)
		return 0;
	if (unwind_new_mappings == HT_NEW_MAPPINGS_FRAME_POINTERS) {
		s->found.bias = scan.bias;
		s->found.kind = HT_MAPPING_FRAME_POINTER;
		s->found.table = 0;
		s->found.rows = 0;
		return 1;
	}
	bpf_loop(phnum, scan_note_segment, &scan, 0);
	if (!scan.key.size)
		return 0;
	struct ht_unwind_file *file = bpf_map_lookup_elem(&unwind_files, &scan.key);
	if (!file)
		return 0;
	s->found.bias = scan.bias + file->base;
	s->found.kind = file->kind;
	s->found.table = file->table;
	s->found.rows = file->rows;
	return 1;
}

#define HT_STEP_CONTINUE 0
#define HT_STEP_DONE 1

/* One frame of the walk in unwind_walks: returns HT_STEP_DONE when it ended. */
__noinline int unwind_step(void)
{
	__u32 zero = 0;
	struct unwind_walk *w = bpf_map_lookup_elem(&unwind_walks, &zero);
	if (!w)
		return HT_STEP_DONE;
	__u64 pc = w->pc, sp = w->sp, bp = w->bp;
	/* A return address points after its call: the call's rules are those of pc - 1. */
	__u64 lookup = (w->step > 0 || w->ip_is_return) ? pc - 1 : pc;
	struct ht_unwind_mapping *m = find_mapping(w->tgid, lookup);
	if (!m && resolve_new_mapping(lookup)) {
		struct new_mapping_scratch *s = bpf_map_lookup_elem(&new_mapping_scratch, &zero);
		if (s)
			m = &s->found;
	}
	/* No mapping yet: the recorder has not loaded it (just mapped). The walk stops
	 * here, and the recorder finishes it (HT_STACK_DEFERRED). */
	if (!m) {
		w->flags |= HT_STACK_DEFERRED;
		return HT_STEP_DONE;
	}
	if (w->pending) {
		__u32 n = w->n;
		if (n >= w->max_frames || n >= HT_MAX_STACK_DEPTH)
			return HT_STEP_DONE;
		w->frames[n] = pc;
		w->n = n + 1;
	}
	w->step++;
	if (m->kind == HT_MAPPING_STOP) {
		w->flags |= HT_STACK_INCOMPLETE;
		return HT_STEP_DONE;
	}
	__u64 cfa, ra = 0, next_bp = bp;
	__u32 ra_slots = 1; /* the frame record {saved fp, return address} at the frame pointer */
	if (m->kind == HT_MAPPING_TABLE) {
		struct ht_frame_rule rule = ht_rule_fields(find_rule(m->table, m->rows, (__u32)(lookup - m->bias)));
		if (rule.cfa_kind == HT_CFA_STOP)
			return HT_STEP_DONE;
		/* ra_slots 0: the return address is still in the link register, which only the
		 * innermost frame has (and the walk starts at its value on arm64). */
		if (rule.cfa_kind == HT_CFA_UNSUPPORTED || (rule.cfa_kind == HT_CFA_RBP && !w->bp_known) ||
		    rule.ra_slots == 0) {
			w->flags |= HT_STACK_INCOMPLETE;
			return HT_STEP_DONE;
		}
		cfa = (rule.cfa_kind == HT_CFA_RSP ? sp : bp) + rule.cfa_offset;
		ra_slots = rule.ra_slots;
		if (rule.fp_slots == HT_FRAME_FP_UNKNOWN) {
			w->bp_known = 0;
		} else if (rule.fp_slots != 0) {
			if (!read_user_word(cfa - 8 * (__u64)rule.fp_slots, &next_bp)) {
				w->flags |= HT_STACK_INCOMPLETE;
				return HT_STEP_DONE;
			}
			w->bp_known = 1;
		}
	} else {
		/* No CFI: the frame record {saved rbp, return address} at rbp. A zero frame
		 * pointer ends the chain (_start clears it): the outermost frame. */
		if (w->bp_known && bp == 0)
			return HT_STEP_DONE;
		if (!w->bp_known || bp < sp || (bp & 7) || bp - sp > HT_MAX_FRAME_BYTES ||
		    !read_user_word(bp, &next_bp)) {
			w->flags |= HT_STACK_INCOMPLETE;
			return HT_STEP_DONE;
		}
		cfa = bp + 16;
	}
	if (cfa <= sp || cfa - sp > HT_MAX_FRAME_BYTES || !read_user_word(cfa - 8 * (__u64)ra_slots, &ra)) {
		w->flags |= HT_STACK_INCOMPLETE;
		return HT_STEP_DONE;
	}
	ra = HT_STRIP_RETURN_ADDRESS(ra);
	if (!ra)
		return HT_STEP_DONE; /* the end of a frame-pointer chain */
	w->pc = ra;
	w->sp = cfa;
	w->bp = next_bp;
	w->pending = 1;
	return HT_STEP_CONTINUE;
}

/* Walks from the registers into out[]. `ip_is_return`: ip is a return address (a return
 * probe; arm64's link register at an entry probe), emitted as frame 0; else ip is inside
 * the allocator, whose own frame is not emitted. Returns the number of frames; adds
 * HT_STACK_INCOMPLETE to *flags when the walk stopped before the outermost frame,
 * HT_STACK_DEFERRED when it reached a pc without a known mapping (fill_resume). */
static __always_inline __u32 unwind_cfi(__u32 tgid, __u64 ip, __u64 sp, __u64 bp, bool ip_is_return,
					__u64 *out, __u32 max_frames, __u32 *flags)
{
	__u32 zero = 0;
	struct unwind_walk *w = bpf_map_lookup_elem(&unwind_walks, &zero);
	if (!w) {
		*flags |= HT_STACK_INCOMPLETE;
		return 0;
	}
	w->pc = ip;
	w->sp = sp;
	w->bp = bp;
	w->tgid = tgid;
	w->n = 0;
	w->max_frames = max_frames;
	w->flags = 0;
	w->step = 0;
	w->bp_known = 1;
	w->pending = 0;
	w->ip_is_return = ip_is_return;
	if (ip_is_return) {
		w->frames[0] = ip;
		w->n = 1;
	}
	int i;
	for (i = 0; i < HT_MAX_STACK_DEPTH + 1; i++)
		if (unwind_step() == HT_STEP_DONE)
			break;
	if (i == HT_MAX_STACK_DEPTH + 1)
		w->flags |= HT_STACK_INCOMPLETE;
	*flags |= w->flags;
	__u32 n = w->n;
	if (n > HT_MAX_STACK_DEPTH)
		n = HT_MAX_STACK_DEPTH;
	if (n && bpf_probe_read_kernel(out, n * sizeof(__u64), w->frames))
		return 0;
	return n;
}

/* After a walk that ended HT_STACK_DEFERRED: where it stopped, and a copy of the stack
 * from there (as much of HT_DEFER_STACK_BYTES as is mapped). */
static __always_inline void fill_resume(struct ht_resume *r, __u8 *stack)
{
	__u32 zero = 0;
	struct unwind_walk *w = bpf_map_lookup_elem(&unwind_walks, &zero);
	r->stack_len = 0;
	r->chunks_read = 0;
	if (!w)
		return;
	r->pc = w->pc;
	r->sp = w->sp;
	r->bp = w->bp;
	r->bp_known = w->bp_known;
	r->pending = w->pending;
	r->stepped = w->step > 0;
	r->ip_is_return = w->ip_is_return;
	/* Page by page, from sp to the end of the page holding sp + HT_DEFER_STACK_BYTES - 1:
	 * the end of the stack (a thread's first frames) and pages never touched inside a
	 * large frame are not read. */
	__u64 sp = w->sp;
	__u32 off = 0, read = 0;
	for (int i = 0; i < HT_DEFER_STACK_CHUNKS; i++) {
		if (off >= HT_DEFER_STACK_BYTES)
			break;
		/* To the end of the page (the last one read whole: stack[] has room for it). */
		__u32 size = HT_PAGE_BYTES - ((sp + off) & (HT_PAGE_BYTES - 1));
		if (!bpf_probe_read_user(stack + (off & (HT_DEFER_STACK_BYTES - 1)), size, (void *)(sp + off)))
			read |= 1u << i;
		off += size;
	}
	/* Up to the end of the last chunk read. */
	__u32 len = 0;
	off = 0;
	for (int i = 0; i < HT_DEFER_STACK_CHUNKS; i++) {
		if (off >= HT_DEFER_STACK_BYTES)
			break;
		off += HT_PAGE_BYTES - ((sp + off) & (HT_PAGE_BYTES - 1));
		if (read & (1u << i))
			len = off;
	}
	r->stack_len = len;
	r->chunks_read = read;
}

#endif
