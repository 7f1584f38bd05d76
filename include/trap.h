/* Interrupt/exception entry: the saved frame, handlers, and fault catching. */
#ifndef LOCKLAB_TRAP_H
#define LOCKLAB_TRAP_H

#include "types.h"

struct trapframe {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

#define VEC_DE 0
#define VEC_NMI 2
#define VEC_BP 3
#define VEC_UD 6
#define VEC_DF 8
#define VEC_GP 13
#define VEC_PF 14
#define VEC_MC 18

/* Interrupt vectors above the exceptions. */
#define VEC_IRQ_BASE 32 /* legacy PIC, remapped and masked */
#define VEC_TIMER 0xe0
#define VEC_CALL_FUNC 0xf0
#define VEC_KICK 0xf1
#define VEC_RESCHED 0xf2
#define VEC_TLB 0xf3
#define VEC_TEST 0xf4
#define VEC_ERROR 0xfe
#define VEC_SPURIOUS 0xff

/* Stacks of their own for faults that must report even on a broken stack. */
#define IST_DOUBLE_FAULT 1
#define IST_NMI 2
#define IST_MACHINE_CHECK 3

typedef void (*irq_handler_t)(struct trapframe *tf);

void gdt_init(void);
void idt_init(void);
void idt_load(void);
void register_irq_handler(int vector, irq_handler_t fn);
/* NMIs are shared: every registered handler runs. */
void register_nmi_handler(bool (*fn)(struct trapframe *tf));
void dump_trapframe(const struct trapframe *tf);
void trap(struct trapframe *tf);
/*
 * The scheduler's part of every interrupt (not exceptions, not NMIs):
 * sched_irq_enter() before the handler, sched_irq_exit() after it, on the
 * interrupted thread's stack with interrupts still off -- where preempt=full
 * and rt switch threads.  Weak no-ops without kernel/sched.
 */
void sched_irq_enter(void);
void sched_irq_exit(struct trapframe *tf);

/* setjmp/longjmp for the kernel (callee-saved registers, rsp, rip). */
struct jmpbuf {
	uint64_t rbx, rbp, r12, r13, r14, r15, rsp, rip;
};
int kernel_setjmp(struct jmpbuf *jb) __attribute__((returns_twice));

/*
 * Catching an expected exception, for tests:
 *
 *	struct fault_catch fc;
 *	fault_catch_begin(&fc);
 *	if (kernel_setjmp(&fc.jb) == 0)
 *		asm volatile("ud2");
 *	fault_catch_end();
 *	// fc.vector is 6
 *
 * The exception handler resumes at the setjmp with a non-zero value.
 */
struct fault_catch {
	struct jmpbuf jb;
	int vector; /* -1 until an exception was caught */
	uint64_t error, cr2, rip;
};

void fault_catch_begin(struct fault_catch *fc);
void fault_catch_end(void);
const char *exception_name(int vector);

#endif
