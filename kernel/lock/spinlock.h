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
#include "rwlock.h"
#include "seqlock.h"
#include "tas.h"
#include "ticket.h"

typedef struct raw_spinlock {
	struct ticket_lock tl;
} raw_spinlock_t;

typedef struct spinlock {
	struct raw_spinlock rlock;
} spinlock_t;

#define __RAW_SPIN_LOCK_UNLOCKED(n)       \
	{                                 \
		.tl = TICKET_LOCK_INIT(n) \
	}
#define __SPIN_LOCK_UNLOCKED(n)                      \
	{                                            \
		.rlock = __RAW_SPIN_LOCK_UNLOCKED(n) \
	}
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

static inline void spin_lock_init(spinlock_t *l)
{
	raw_spin_lock_init(&l->rlock);
}
static inline void spin_lock(spinlock_t *l)
{
	raw_spin_lock(&l->rlock);
}
static inline bool spin_trylock(spinlock_t *l)
{
	return raw_spin_trylock(&l->rlock);
}
static inline void spin_unlock(spinlock_t *l)
{
	raw_spin_unlock(&l->rlock);
}

#define spin_lock_irqsave(l, flags)                               \
	do {                                                      \
		(flags) = raw_spin_lock_irqsave_ret(&(l)->rlock); \
	} while (0)

static inline void spin_unlock_irqrestore(spinlock_t *l, unsigned long flags)
{
	raw_spin_unlock_irqrestore(&l->rlock, flags);
}

static inline bool spin_is_locked(spinlock_t *l)
{
	return raw_spin_is_locked(&l->rlock);
}
static inline bool spin_is_contended(spinlock_t *l)
{
	return raw_spin_is_contended(&l->rlock);
}
static inline bool spin_needbreak(spinlock_t *l)
{
	return spin_is_contended(l);
}

/* LOCK_STAT figures of a spinlock_t (NULL without LOCK_STAT). */
static inline const struct lock_stat *spin_lock_stat(spinlock_t *l)
{
#ifdef LOCK_STAT
	return &l->rlock.tl.meta.stat;
#else
	(void)l;
	return NULL;
#endif
}

#include "multilock.h"

#endif /* LOCKLAB_LOCK_SPINLOCK_H */
