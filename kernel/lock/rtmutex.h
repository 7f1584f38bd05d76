/*
 * rtmutex.h - the storage of the priority-inheriting sleeping lock.
 *
 * Under preempt=rt every spinlock_t carries one of these and sleeps on it
 * instead of spinning (see spinlock.h).  The algorithm -- the wait list in
 * priority order, priority inheritance along chains of owners, deadlock
 * detection -- belongs to the scheduler (kernel/sched/rtmutex.c), which
 * alone can block and wake threads.  This header only fixes the layout, so
 * that this directory still depends on nothing but arch.h.
 *
 * All-zero is an unlocked mutex without a name.
 */
#ifndef LOCKLAB_LOCK_RTMUTEX_H
#define LOCKLAB_LOCK_RTMUTEX_H

#include <stdint.h>

struct rt_waiter;

struct rt_mutex {
	/*
	 * The owning thread, with bit 0 set while the wait list is non-empty.
	 * A free lock with waiters reads 1: the woken top waiter has not taken
	 * it yet.  Uncontended lock and unlock are one compare-and-swap each;
	 * bit 0 forces both onto the slow path once anybody waits.
	 */
	uintptr_t owner;
	struct rt_waiter *waiters; /* highest priority first, FIFO among equals */
	const char *name;          /* for deadlock and misuse reports */
	unsigned flags;            /* RT_MUTEX_NO_PI */
};

#define RT_MUTEX_HAS_WAITERS 1ul
/* A priority-ordered wait list but no inheritance (to show the inversion). */
#define RT_MUTEX_NO_PI 0x1u

#define RT_MUTEX_INIT(n)                                          \
	{                                                         \
		.owner = 0, .waiters = 0, .name = (n), .flags = 0 \
	}

#endif
