/*
 * arch_host.h - host (pthreads) side of the lock arch layer.
 *
 * A "CPU" is a thread: the harness gives each thread an index with
 * arch_host_set_cpu().  Interrupts do not exist, so irq save/restore are
 * no-ops.  halt/kick are built on futexes, one kick word per CPU (see
 * arch_host.c for the lost-wake-up argument).
 */
#ifndef LOCKLAB_LOCK_ARCH_HOST_H
#define LOCKLAB_LOCK_ARCH_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

extern __thread int arch_host_cpu;
extern int arch_host_ncpus;

/*
 * When threads outnumber host CPUs, a FIFO lock whose next waiter has been
 * descheduled stalls until the scheduler runs it again (the problem
 * pvticket.c exists for).  A torture run may set arch_host_yield_every so
 * that every N-th cpu_relax() yields the host CPU and the run makes
 * progress; benchmarks leave it at 0, pure spinning.
 */
extern unsigned int arch_host_yield_every;
extern __thread unsigned int arch_host_spins;
void arch_host_yield(void);

/* Set by the harness. */
void arch_host_set_cpu(int cpu); /* also records the thread for arch_dump_cpu_stack */
void arch_host_set_num_cpus(int n);

/* Counters of the futex layer, for tests. */
struct arch_host_stats {
	uint64_t halts;         /* arch_halt_if() calls that went to sleep */
	uint64_t halt_timeouts; /* sleeps ended by the safety timeout, not a kick */
	uint64_t kicks;         /* arch_kick_cpu() calls */
};
void arch_host_get_stats(struct arch_host_stats *out);
void arch_host_reset_stats(void);

void arch_halt_if(const uint32_t *word, uint32_t old);
void arch_kick_cpu(int cpu);
/* The host has no hypervisor telling it that a thread is off its CPU. */
static inline bool arch_vcpu_is_preempted(int cpu)
{
	(void)cpu;
	return false;
}
void arch_dump_cpu_stack(int cpu);
void arch_host_dump_stack(void);
int arch_host_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void arch_host_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
	if (arch_host_yield_every && ++arch_host_spins >= arch_host_yield_every) {
		arch_host_spins = 0;
		arch_host_yield();
	}
}

static inline int arch_cpu_id(void)
{
	return arch_host_cpu;
}
static inline int arch_num_cpus(void)
{
	return arch_host_ncpus;
}
static inline unsigned long arch_irq_save(void)
{
	return 0;
}
static inline void arch_irq_restore(unsigned long flags)
{
	(void)flags;
}
static inline bool arch_need_resched(void)
{
	return false;
}
static inline void arch_dump_stack(void)
{
	arch_host_dump_stack();
}
static inline void lock_preempt_disable(void)
{
}
static inline void lock_preempt_enable(void)
{
}
static inline void lock_cond_resched(void)
{
}

static inline uint64_t arch_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define lock_printf arch_host_printf
#define lock_panic arch_host_panic

#endif /* LOCKLAB_LOCK_ARCH_HOST_H */
