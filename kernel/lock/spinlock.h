/*
 * spinlock.h - the Linux-named lock API, and the one header to include.
 *
 * raw_spinlock_t is the ticket lock and always spins.  spinlock_t is a
 * distinct type wrapping a raw_spinlock_t; today it spins too, but it is the
 * type a preempt=rt kernel turns into a sleeping rt-mutex, so keep the two
 * apart in callers.  Both bracket their critical section with
 * lock_preempt_disable()/lock_preempt_enable().
 *
 * spin_lock_irqsave(lock, flags) assigns flags, as in Linux.
 * spin_needbreak(lock) is the contention test (tail - head > 1).
 *
 * preempt=rt (kernel only: arch_kernel.h defines LOCK_RT_SPINLOCKS).  The
 * scheduler sets rt_spinlocks when it starts under that model; from then on
 * spinlock_t uses its rt-mutex (rtmutex.h) and no longer disables
 * preemption: a contended spin_lock() sleeps, with priority inheritance.
 * raw_spinlock_t never changes.  The rule for callers:
 *   - before the scheduler runs, spinlock_t is the ticket lock (the switch
 *     happens once, at scheduler start, when no spinlock_t is held);
 *   - in a context that cannot sleep (interrupts off, preemption disabled,
 *     an interrupt handler, the idle thread) spin_lock() on an rt spinlock_t
 *     spins on the rt-mutex instead of sleeping: correct, but neither
 *     bounded nor priority-inheriting, and a misuse if the holder is a
 *     preempted thread of this very CPU (reported, not hung).  Data shared
 *     with interrupt handlers, the scheduler, timers and IPIs takes a
 *     raw_spinlock_t;
 *   - spin_lock_irqsave() leaves interrupts on under rt (as PREEMPT_RT
 *     does) when the caller may sleep, so it can sleep too; with interrupts
 *     already off it spins as above.  Either way `flags` restores them.
 *
 * Every primitive's own API comes with this header: tas_*, ticket_*, brk_* /
 * need_lockbreak / cond_resched_lock, pv_*, mcs_*, read_* / write_*,
 * *_seq*, multi_lock_*.
 */
#ifndef LOCKLAB_LOCK_SPINLOCK_H
#define LOCKLAB_LOCK_SPINLOCK_H

#include "arch.h"
#include "breakable.h"
#include "lock_debug.h"
#include "mcs.h"
#include "pvticket.h"
#include "rtmutex.h"
#include "rwlock.h"
#include "seqlock.h"
#include "tas.h"
#include "ticket.h"

typedef struct raw_spinlock {
	struct ticket_lock tl;
} raw_spinlock_t;

typedef struct spinlock {
	struct raw_spinlock rlock;
#ifdef LOCK_RT_SPINLOCKS
	struct rt_mutex rt; /* used instead of rlock once rt_spinlocks is set */
#endif
} spinlock_t;

#define __RAW_SPIN_LOCK_UNLOCKED(n)       \
	{                                 \
		.tl = TICKET_LOCK_INIT(n) \
	}
#ifdef LOCK_RT_SPINLOCKS
#define __SPIN_LOCK_UNLOCKED(n)                                              \
	{                                                                    \
		.rlock = __RAW_SPIN_LOCK_UNLOCKED(n), .rt = RT_MUTEX_INIT(n) \
	}
#else
#define __SPIN_LOCK_UNLOCKED(n)                      \
	{                                            \
		.rlock = __RAW_SPIN_LOCK_UNLOCKED(n) \
	}
#endif
#define RAW_SPIN_LOCK_UNLOCKED __RAW_SPIN_LOCK_UNLOCKED(NULL)
#define SPIN_LOCK_UNLOCKED __SPIN_LOCK_UNLOCKED(NULL)
#define DEFINE_RAW_SPINLOCK(x) raw_spinlock_t x = __RAW_SPIN_LOCK_UNLOCKED(#x)
#define DEFINE_SPINLOCK(x) spinlock_t x = __SPIN_LOCK_UNLOCKED(#x)

/* ---- raw_spinlock_t ---------------------------------------------------- */

static inline void raw_spin_lock_init(raw_spinlock_t *l)
{
	ticket_lock_init(&l->tl);
}

static inline void raw_spin_lock(raw_spinlock_t *l)
{
	lock_preempt_disable();
	ticket_lock(&l->tl);
}

static inline bool raw_spin_trylock(raw_spinlock_t *l)
{
	lock_preempt_disable();
	if (ticket_trylock(&l->tl))
		return true;
	lock_preempt_enable();
	return false;
}

static inline void raw_spin_unlock(raw_spinlock_t *l)
{
	ticket_unlock(&l->tl);
	lock_preempt_enable();
}

static inline unsigned long raw_spin_lock_irqsave_ret(raw_spinlock_t *l)
{
	unsigned long flags = arch_irq_save();

	lock_preempt_disable();
	ticket_lock(&l->tl);
	return flags;
}

#define raw_spin_lock_irqsave(l, flags)                 \
	do {                                            \
		(flags) = raw_spin_lock_irqsave_ret(l); \
	} while (0)

static inline void raw_spin_unlock_irqrestore(raw_spinlock_t *l, unsigned long flags)
{
	ticket_unlock(&l->tl);
	arch_irq_restore(flags);
	lock_preempt_enable();
}

static inline bool raw_spin_is_locked(raw_spinlock_t *l)
{
	return ticket_is_locked(&l->tl);
}
static inline bool raw_spin_is_contended(raw_spinlock_t *l)
{
	return ticket_is_contended(&l->tl);
}

/* ---- spinlock_t -------------------------------------------------------- */

#ifdef LOCK_RT_SPINLOCKS
#define SPIN_RT(l) (lock_unlikely(rt_spinlocks))
#else
#define SPIN_RT(l) 0
#endif

static inline void spin_lock_init(spinlock_t *l)
{
	raw_spin_lock_init(&l->rlock);
#ifdef LOCK_RT_SPINLOCKS
	l->rt = (struct rt_mutex)RT_MUTEX_INIT(0);
#endif
}
static inline void spin_lock(spinlock_t *l)
{
#ifdef LOCK_RT_SPINLOCKS
	if (SPIN_RT(l)) {
		rt_spin_lock(&l->rt);
		return;
	}
#endif
	raw_spin_lock(&l->rlock);
}
static inline bool spin_trylock(spinlock_t *l)
{
#ifdef LOCK_RT_SPINLOCKS
	if (SPIN_RT(l))
		return rt_spin_trylock(&l->rt);
#endif
	return raw_spin_trylock(&l->rlock);
}
static inline void spin_unlock(spinlock_t *l)
{
#ifdef LOCK_RT_SPINLOCKS
	if (SPIN_RT(l)) {
		rt_spin_unlock(&l->rt);
		return;
	}
#endif
	raw_spin_unlock(&l->rlock);
}

static inline unsigned long spin_lock_irqsave_ret(spinlock_t *l)
{
#ifdef LOCK_RT_SPINLOCKS
	if (SPIN_RT(l)) {
		unsigned long flags = arch_irq_save();

		/* Interrupts stay on when the caller had them on: it may sleep. */
		if (flags & X86_RFLAGS_IF)
			arch_irq_restore(flags);
		rt_spin_lock(&l->rt);
		return flags;
	}
#endif
	return raw_spin_lock_irqsave_ret(&l->rlock);
}

#define spin_lock_irqsave(l, flags)                 \
	do {                                        \
		(flags) = spin_lock_irqsave_ret(l); \
	} while (0)

static inline void spin_unlock_irqrestore(spinlock_t *l, unsigned long flags)
{
#ifdef LOCK_RT_SPINLOCKS
	if (SPIN_RT(l)) {
		rt_spin_unlock(&l->rt);
		arch_irq_restore(flags);
		return;
	}
#endif
	raw_spin_unlock_irqrestore(&l->rlock, flags);
}

static inline bool spin_is_locked(spinlock_t *l)
{
#ifdef LOCK_RT_SPINLOCKS
	if (SPIN_RT(l))
		return (__atomic_load_n(&l->rt.owner, __ATOMIC_RELAXED) & ~RT_MUTEX_HAS_WAITERS) !=
		       0;
#endif
	return raw_spin_is_locked(&l->rlock);
}
static inline bool spin_is_contended(spinlock_t *l)
{
#ifdef LOCK_RT_SPINLOCKS
	if (SPIN_RT(l))
		return (__atomic_load_n(&l->rt.owner, __ATOMIC_RELAXED) & RT_MUTEX_HAS_WAITERS) !=
		       0;
#endif
	return raw_spin_is_contended(&l->rlock);
}
static inline bool spin_needbreak(spinlock_t *l)
{
	return spin_is_contended(l);
}

/* LOCK_STAT figures of a spinlock_t (NULL without LOCK_STAT, or as an rt-mutex). */
static inline const struct lock_stat *spin_lock_stat(spinlock_t *l)
{
#ifdef LOCK_STAT
	if (SPIN_RT(l))
		return NULL;
	return &l->rlock.tl.meta.stat;
#else
	(void)l;
	return NULL;
#endif
}

#include "multilock.h"

#endif /* LOCKLAB_LOCK_SPINLOCK_H */
