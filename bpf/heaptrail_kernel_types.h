/* The kernel types the CO-RE fork tracker reads, declared with only the fields it uses.
 * libbpf relocates every access against the running kernel's BTF at load time, so one
 * declaration serves every architecture and kernel: no vmlinux.h dumped from the build
 * machine's kernel (a cross build's target kernel is not the build machine's). */
#ifndef HEAPTRAIL_KERNEL_TYPES_H
#define HEAPTRAIL_KERNEL_TYPES_H

#include <linux/types.h>
#include <linux/bpf.h>

struct task_struct {
	int tgid; /* pid_t */
} __attribute__((preserve_access_index));

#endif
