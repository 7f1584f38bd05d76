/* pvticket.h - paravirtual ticket lock: spin a while, then halt until kicked. */
#ifndef LOCKLAB_LOCK_PVTICKET_H
#define LOCKLAB_LOCK_PVTICKET_H

#include "lock_debug.h"

/*
 * Spin iterations before a waiter stops spinning and halts.  Long enough that
 * a lock held for an ordinary critical section is granted while we still
 * spin (halting and kicking cost microseconds: an IPI or a futex round trip),
 * short enough that a waiter stuck behind a holder or an earlier waiter that
 * is not running gives its CPU back within tens of microseconds instead of
 * burning a whole time slice.  2^15 is the value the Linux series used.
 */
#ifndef PV_SPIN_THRESHOLD
#define PV_SPIN_THRESHOLD (1u << 15)
#endif

#define PV_TICKET_INC 2u    /* tickets advance by 2 ... */
#define PV_SLOWPATH_FLAG 1u /* ... so bit 0 of tail is free for this flag */

struct pv_lock {
	union {
		uint32_t val;
		struct {
			uint16_t head; /* offset 0 */
			uint16_t tail; /* bit 0: PV_SLOWPATH_FLAG */
		};
	};
	int32_t holder; /* CPU of the last acquirer: a hint, see pvticket.c */
	LOCK_META_FIELD
};

#define PV_LOCK_INIT(n)                    \
	{                                  \
		.val = 0 LOCK_META_INIT(n) \
	}

struct pv_stats {
	uint64_t slowpath;    /* waiters that passed the spin threshold */
	uint64_t halts;       /* arch_halt_if() calls */
	uint64_t kicks;       /* arch_kick_cpu() calls made by unlock */
	uint64_t flag_clears; /* unlocks that found the lock idle and cleared the flag */
	uint64_t preempted;   /* waits cut short: the holder's vCPU was preempted */
};

extern unsigned int pv_spin_threshold; /* PV_SPIN_THRESHOLD; tests may lower it */
/* Halt at once when the holder's vCPU is preempted (default on; tests compare). */
extern bool pv_halt_on_preempted;
/* How often (every this many spins, a power of 2) a waiter looks at the holder. */
#define PV_PREEMPT_CHECK_SPINS 16u

void pv_lock_init(struct pv_lock *l);
void pv_lock(struct pv_lock *l);
bool pv_trylock(struct pv_lock *l);
void pv_unlock(struct pv_lock *l);
bool pv_is_locked(const struct pv_lock *l);
bool pv_is_contended(const struct pv_lock *l);
void pv_stats_get(struct pv_stats *out);
void pv_stats_reset(void);

#endif
