; Interrupt and exception entry stubs, and the kernel's setjmp.
;
; Every vector gets a stub that makes the stack look the same (a zero error
; code where the CPU pushes none, then the vector number), then the common
; path saves the general registers as a struct trapframe and calls trap().
; locklab runs only in ring 0, so there is no SWAPGS and no stack switch
; except the IST stacks named in the IDT.

bits 64
section .text

extern trap
global isr_table
global kernel_setjmp

; Vectors where the CPU pushes an error code.
%define HAS_ERROR(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

%macro ISR 1
isr_%1:
%if HAS_ERROR(%1) == 0
	push 0
%endif
	push %1
	jmp isr_common
%endmacro

%assign v 0
%rep 256
	ISR v
%assign v v + 1
%endrep

isr_common:
	push rax
	push rbx
	push rcx
	push rdx
	push rsi
	push rdi
	push rbp
	push r8
	push r9
	push r10
	push r11
	push r12
	push r13
	push r14
	push r15
	cld
	mov rdi, rsp
	; Keep the backtrace chain through the interrupted code: a frame whose
	; saved rbp is the interrupted rbp and whose return address is its rip.
	push qword [rsp + 17 * 8]	; interrupted rip
	push rbp
	mov rbp, rsp
	call trap
	add rsp, 16
	pop r15
	pop r14
	pop r13
	pop r12
	pop r11
	pop r10
	pop r9
	pop r8
	pop rbp
	pop rdi
	pop rsi
	pop rdx
	pop rcx
	pop rbx
	pop rax
	add rsp, 16			; vector and error code
	iretq

; int kernel_setjmp(struct jmpbuf *jb): saves callee-saved registers, the
; stack pointer after return and the return address.  The exception handler
; "returns" here with a non-zero rax (see fault_catch in trap.c).
kernel_setjmp:
	mov [rdi + 0], rbx
	mov [rdi + 8], rbp
	mov [rdi + 16], r12
	mov [rdi + 24], r13
	mov [rdi + 32], r14
	mov [rdi + 40], r15
	lea rax, [rsp + 8]
	mov [rdi + 48], rax
	mov rax, [rsp]
	mov [rdi + 56], rax
	xor eax, eax
	ret

section .rodata
align 8
isr_table:
%assign v 0
%rep 256
	dq isr_ %+ v
%assign v v + 1
%endrep
