/*
 * arch_kernel.c - weak defaults for the optional kernel hooks of arch_kernel.h.
 *
 * A kernel without preemption needs none of them.  The scheduler defines
 * strong versions: lock_preempt_disable/enable bracket every spin_lock() and
 * raw_spin_lock() critical section, lock_cond_resched() is the scheduling
 * point cond_resched_lock() offers while it has dropped the lock.
 * Empty on the host build.
 */
#ifndef LOCKLAB_HOST
#include "arch.h"

__attribute__((weak)) void lock_preempt_disable(void)
{
}
__attribute__((weak)) void lock_preempt_enable(void)
{
}
__attribute__((weak)) void lock_cond_resched(void)
{
}
#endif
