/*
 * arch_kernel.c - weak defaults for the optional kernel hooks of arch_kernel.h.
 *
 * A kernel without preemption needs none of them.  The scheduler defines
 * strong versions: lock_preempt_resched() is the preemption point when a
 * spin_unlock() lets the count fall to zero, lock_cond_resched() is the scheduling
 * point cond_resched_lock() offers while it has dropped the lock; it also
 * provides the preempt=rt spinlock_t (rt_spinlocks, rt_spin_*).
 * Empty on the host build.
 */
#ifndef LOCKLAB_HOST
#include "arch.h"

__attribute__((weak)) void lock_preempt_resched(void)
{
}
__attribute__((weak)) bool arch_vcpu_is_preempted(int cpu)
{
	(void)cpu;
	return false;
}

__attribute__((weak)) void lock_cond_resched(void)
{
}

/* Without a scheduler spinlock_t always spins: these are never reached. */
__attribute__((weak)) bool rt_spinlocks;
__attribute__((weak)) void rt_spin_lock(struct rt_mutex *m)
{
	lock_panic("rt_spin_lock(%p) without a scheduler", (void *)m);
}
__attribute__((weak)) bool rt_spin_trylock(struct rt_mutex *m)
{
	lock_panic("rt_spin_trylock(%p) without a scheduler", (void *)m);
}
__attribute__((weak)) void rt_spin_unlock(struct rt_mutex *m)
{
	lock_panic("rt_spin_unlock(%p) without a scheduler", (void *)m);
}
#endif
