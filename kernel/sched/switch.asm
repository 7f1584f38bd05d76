; The context switch.  Only the callee-saved registers (rbx, rbp, r12-r15)
; and the stack pointer need saving: the switch is a function call, so the
; compiler has already saved everything else it still needs.  The kernel is
; built with -mgeneral-regs-only: there is no FPU or vector state.
;
; struct thread *sched_switch(struct thread *prev, struct thread *next)
;   Push prev's callee-saved registers on its stack, store its rsp in
;   prev->rsp (offset 0), load next->rsp, pop next's registers and return
;   on next's stack.  rdi is not restored, so the return value -- the
;   thread we switched away from -- is correct in next's context.
;
; A new thread's stack is built by thread_create() so that the first switch
; to it pops six zeroed registers (rbp = 0 ends backtraces) and "returns" to
; sched_thread_entry with rax = prev.

bits 64
section .text

global sched_switch
global sched_thread_entry
extern sched_thread_start

sched_switch:
	push rbp
	push rbx
	push r12
	push r13
	push r14
	push r15
	mov [rdi], rsp
	mov rsp, [rsi]
	pop r15
	pop r14
	pop r13
	pop r12
	pop rbx
	pop rbp
	mov rax, rdi
	ret

sched_thread_entry:
	mov rdi, rax
	call sched_thread_start		; finishes the switch, runs fn(arg), exits
	ud2
