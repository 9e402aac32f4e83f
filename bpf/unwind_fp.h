/* Frame-pointer walk of a user stack, for the BPF programs (included by user_stack.h).
 * x86-64 and arm64 share it: a frame record is {saved frame pointer, return address} at
 * the frame pointer (rbp, x29) on both; at a return probe the kernel has already put the
 * original return address in the ip, and the returning function has restored its
 * caller's frame pointer, so the walk starts at the caller's record. arm64 return
 * addresses saved under pointer authentication are stripped of their signature. */
#ifndef HEAPTRAIL_UNWIND_FP_H
#define HEAPTRAIL_UNWIND_FP_H

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

/* Walks the frame-pointer chain from (sp, fp) into out[1..]. out[0] must already hold
 * the first return address, unless ra_at_sp: then it is read from [sp] (at a function's
 * first instruction). Returns the number of frames in out[], or -1 when the top of the
 * stack cannot be copied (the caller falls back to bpf_get_stack). */
static __always_inline long unwind_fp(__u64 sp, __u64 fp, __u64 *out, __u32 max_frames,
				      bool ra_at_sp)
{
	__u32 zero = 0;
	struct stack_window *w = bpf_map_lookup_elem(&stack_windows, &zero);
	if (!w)
		return -1;
	if (bpf_probe_read_user(w->bytes, STACK_WINDOW, (void *)sp))
		return -1;
	if (ra_at_sp)
		out[0] = *(__u64 *)&w->bytes[0];
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
		ret = HT_STRIP_RETURN_ADDRESS(ret);
		if (!ret)
			break;
		out[n++] = ret;
		if (next <= fp)
			break;
		fp = next;
	}
	return n;
}

#endif
