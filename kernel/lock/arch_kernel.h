/*
 * arch_kernel.h - kernel side of the lock arch layer (x86-64, freestanding).
 *
 * The kernel provides the functions declared extern below; kernel/lock/ never
 * includes another kernel header.  Two hooks (lock_preempt_resched,
 * lock_cond_resched) have weak no-op definitions in arch_kernel.c; the
 * scheduler overrides them by defining strong ones, as it does the
 * preempt=rt switch (rt_spinlocks, rt_spin_*).
 */
#ifndef LOCKLAB_LOCK_ARCH_KERNEL_H
#define LOCKLAB_LOCK_ARCH_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

/* ---- provided by the kernel ------------------------------------------- */
extern int num_online_cpus(void);
extern unsigned long local_irq_save(void);
extern void local_irq_restore(unsigned long flags);
extern void arch_kick_cpu(int cpu);       /* wake-up IPI; handler only EOIs */
extern uint64_t arch_now_ns(void);        /* TSC based */
extern void dump_stack(void);             /* backtrace of this CPU */
extern void arch_dump_cpu_stack(int cpu); /* NMI another CPU for its backtrace */
extern bool need_resched(void);
extern int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern _Noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- weak defaults in arch_kernel.c; the scheduler may override -------- */
extern void lock_preempt_resched(void); /* the preemption count fell to 0, a switch is due */
extern void lock_cond_resched(void);    /* called by cond_resched_lock() with the lock dropped */
/* Is that CPU's vCPU preempted by the hypervisor right now?  False where no host says. */
extern bool arch_vcpu_is_preempted(int cpu);

/*
 * Every spin_lock() disables preemption and every unlock enables it, so
 * these sit on the fast path of every lock measured: inline, one
 * %gs-relative instruction each on the CPU's own struct cpu (include/cpu.h;
 * kernel/sched/sched.c checks the offsets), and a call only when the count
 * falls to zero with a reschedule pending.  GS holds the boot CPU's struct
 * cpu from the 64-bit entry on (boot/entry.asm), so locks taken before
 * cpu_init() count there too; an AP runs cpu_init() before it takes any.
 * A single read-modify-write instruction cannot be split by an interrupt
 * or a migration.
 */
#define LOCK_CPU_ID_OFFSET 8
#define LOCK_CPU_PREEMPT_COUNT_OFFSET 16
#define LOCK_CPU_RESCHED_OFFSET 20

static inline void lock_preempt_disable(void)
{
	__asm__ volatile("incl %%gs:%c0" : : "i"(LOCK_CPU_PREEMPT_COUNT_OFFSET) : "memory");
}

static inline void lock_preempt_enable(void)
{
	bool zero;
	uint8_t resched;

	__asm__ volatile("decl %%gs:%c1"
	                 : "=@ccz"(zero)
	                 : "i"(LOCK_CPU_PREEMPT_COUNT_OFFSET)
	                 : "memory");
	if (!zero)
		return;
	__asm__ volatile("movb %%gs:%c1, %0" : "=q"(resched) : "i"(LOCK_CPU_RESCHED_OFFSET));
	if (resched)
		lock_preempt_resched();
}

/*
 * preempt=rt: spinlock_t becomes the scheduler's rt-mutex (spinlock.h).
 * rt_spinlocks is false until the scheduler starts under that model; the
 * rt_spin_* defaults in arch_kernel.c panic, the scheduler's replace them.
 */
#define LOCK_RT_SPINLOCKS 1
struct rt_mutex;
extern bool rt_spinlocks;
extern void rt_spin_lock(struct rt_mutex *m);
extern bool rt_spin_trylock(struct rt_mutex *m);
extern void rt_spin_unlock(struct rt_mutex *m);

/* ---- inline layer ------------------------------------------------------ */
static inline void cpu_relax(void)
{
	__asm__ __volatile__("pause" ::: "memory");
}

/* smp_processor_id() without the call: struct cpu's id (GS: see above). */
static inline int arch_cpu_id(void)
{
	int id;
	__asm__ volatile("movl %%gs:%c1, %0" : "=r"(id) : "i"(LOCK_CPU_ID_OFFSET));
	return id;
}
static inline int arch_num_cpus(void)
{
	return num_online_cpus();
}
static inline unsigned long arch_irq_save(void)
{
	return local_irq_save();
}
static inline void arch_irq_restore(unsigned long flags)
{
	local_irq_restore(flags);
}
static inline bool arch_need_resched(void)
{
	return need_resched();
}
static inline void arch_dump_stack(void)
{
	dump_stack();
}

#define lock_printf kprintf
#define lock_panic panic

#define X86_RFLAGS_IF 0x200ul

/*
 * Sleep until a kick (or any interrupt) arrives, unless *word has already
 * moved away from @old.  The check runs with interrupts off and the halt is
 * "sti; hlt": STI enables interrupts only after the following instruction, so
 * a kick IPI sent after the check stays pending until HLT and then ends it.
 * The caller always re-checks its condition, so any wake-up is fine.
 *
 * If the caller already had interrupts disabled (spin_lock_irqsave) no IPI
 * could end the HLT, and enabling interrupts here would let a handler run
 * inside the caller's irq-off region; so we do not sleep, we only pause.
 */
static inline void arch_halt_if(const uint32_t *word, uint32_t old)
{
	unsigned long rflags, flags;

	__asm__ __volatile__("pushfq; popq %0" : "=r"(rflags)::"memory");
	if (!(rflags & X86_RFLAGS_IF)) {
		cpu_relax();
		return;
	}
	flags = local_irq_save();
	if (__atomic_load_n(word, __ATOMIC_SEQ_CST) == old)
		__asm__ __volatile__("sti; hlt" ::: "memory");
	local_irq_restore(flags);
}

#endif /* LOCKLAB_LOCK_ARCH_KERNEL_H */
