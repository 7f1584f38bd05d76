/* pvqspinlock.h - paravirtual queued spinlock: queued waiters and the queue head halt and are
 * kicked. */
#ifndef LOCKLAB_LOCK_PVQSPINLOCK_H
#define LOCKLAB_LOCK_PVQSPINLOCK_H

#include "qspinlock.h"

/*
 * Spins before a queued waiter or the queue head halts.  The same reasoning
 * and the same 2^15 as the PV ticket lock's PV_SPIN_THRESHOLD (pvticket.h).
 */
#ifndef PVQ_SPIN_THRESHOLD
#define PVQ_SPIN_THRESHOLD (1u << 15)
#endif

/* The locked byte of a lock whose queue head sleeps: unlock must find and kick it. */
#define PVQ_SLOW 3u
/* Bits 9-15 of the word count lock steals since the queue last took the lock. */
#define PVQ_STEAL_SHIFT 9
#define PVQ_STEAL_ONE (1u << PVQ_STEAL_SHIFT)
#define PVQ_STEAL_MASK (0x7fu << PVQ_STEAL_SHIFT)
#define PVQ_STEAL_MAX 8u /* steals in a row before newcomers must queue */

struct pvqspinlock {
	struct qspinlock q; /* the qspinlock word and debug fields */
};

#define PVQSPINLOCK_INIT(n)            \
	{                              \
		.q = QSPINLOCK_INIT(n) \
	}

struct pvq_stats {
	uint64_t queued;      /* acquisitions through the MCS queue */
	uint64_t halts_queue; /* queued waiters that halted */
	uint64_t halts_head;  /* queue heads that halted on the lock word */
	uint64_t preempted;   /* waiters that halted at once: predecessor's vCPU preempted */
	uint64_t kicks_queue; /* kicks to a halted waiter that became queue head */
	uint64_t kicks_head;  /* kicks by unlock to a halted queue head */
	uint64_t steals;      /* acquisitions ahead of a non-empty queue */
	/*
	 * The lost-kick audit: sleepers that found the lock passed to them (made
	 * queue head, or the lock word released) without the kick that must come
	 * with it.  Must stay 0.
	 */
	uint64_t lost_kicks;
};

extern unsigned int pvq_spin_threshold; /* PVQ_SPIN_THRESHOLD; tests may lower it */
/*
 * DELIBERATELY BROKEN while set (tests only): unlock releases a lock whose
 * head sleeps without waking it, so that the lost-kick audit has something
 * to catch.  The head then wakes only by an unrelated interrupt (kernel: its
 * timer tick) or the host's 5 ms halt timeout.
 */
extern bool pvq_lose_kicks;

void pvq_lock_init(struct pvqspinlock *l);
void pvq_lock(struct pvqspinlock *l);
bool pvq_trylock(struct pvqspinlock *l);
void pvq_unlock(struct pvqspinlock *l);
bool pvq_is_locked(const struct pvqspinlock *l);
bool pvq_is_contended(const struct pvqspinlock *l);
void pvq_stats_get(struct pvq_stats *out);
void pvq_stats_reset(void);

#endif
