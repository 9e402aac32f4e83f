/* The instruction zoo: one tiny function per x86-64 instruction class, each starting
 * with that instruction, so that bench-site-cost can put a uprobe on it and time what
 * the kernel does there (emulate the instruction, or single-step it out of line).
 * Every function is callable as void f(void) and returns. */
	.text

#define ZOO(name) .globl zoo_##name; .type zoo_##name, @function; .p2align 4; zoo_##name:

ZOO(push_rbp)		/* 55 */
	push %rbp
	pop %rbp
	ret
ZOO(push_r12)		/* 41 54 */
	push %r12
	pop %r12
	ret
ZOO(nop)		/* 90 */
	nop
	ret
ZOO(xchg_ax_ax)		/* 66 90 */
	xchg %ax, %ax
	ret
ZOO(nopl4)		/* 0f 1f 40 00 */
	nopl 0x0(%rax)
	ret
ZOO(nopl5)		/* 0f 1f 44 00 00: the USDT nop */
	.byte 0x0f, 0x1f, 0x44, 0x00, 0x00
	ret
ZOO(endbr64)		/* f3 0f 1e fa */
	endbr64
	ret
ZOO(jmp8)		/* eb 00 */
	jmp 1f
1:	ret
ZOO(jmp32)		/* e9 00 00 00 00 */
	.byte 0xe9
	.long 0
	ret
ZOO(jcc8)		/* 74 00 */
	je 1f
1:	ret
ZOO(jcc32)		/* 0f 84 00 00 00 00 */
	.byte 0x0f, 0x84
	.long 0
	ret
ZOO(call32)		/* e8 rel32 */
	call zoo_ret
	ret
ZOO(ret)		/* c3 */
	ret
ZOO(mov_reg)		/* 48 89 f8 */
	mov %rdi, %rax
	ret
ZOO(mov_imm)		/* b8 01 00 00 00 */
	mov $1, %eax
	ret
ZOO(test_reg)		/* 48 85 ff */
	test %rdi, %rdi
	ret
ZOO(xor_reg)		/* 31 c0 */
	xor %eax, %eax
	ret
ZOO(lea)		/* 48 8d 47 08 */
	lea 8(%rdi), %rax
	ret
ZOO(sub_rsp)		/* 48 83 ec 08 */
	sub $8, %rsp
	add $8, %rsp
	ret
ZOO(cmp_riprel)		/* 80 3d rel32 00 */
	cmpb $0, zoo_byte(%rip)
	ret
ZOO(mov_store)		/* 48 89 7c 24 f8 */
	mov %rdi, -8(%rsp)
	ret

	.data
zoo_byte:
	.byte 0
	.section .note.GNU-stack,"",@progbits
