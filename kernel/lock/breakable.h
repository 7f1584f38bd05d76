/* breakable.h - breakable spinlock: need_lockbreak() and cond_resched_lock(). */
#ifndef LOCKLAB_LOCK_BREAKABLE_H
#define LOCKLAB_LOCK_BREAKABLE_H

#include "ticket.h"

/* Lost-break-request audit; on whenever LOCK_DEBUG is (see breakable.c). */
#if defined(LOCK_DEBUG) && !defined(BRK_AUDIT)
#define BRK_AUDIT
#endif

struct brk_audit {
	uint32_t registered; /* waiters that have registered a request, ever */
	uint32_t granted;    /* of those, how many got the lock */
	uint32_t lost;       /* holder checks that answered "no" while one was pending */
	uint32_t checks;     /* holder checks audited */
};

/* A ticket lock (ticket.c) and the count of CPUs spinning on it. */
struct brk_lock {
	struct ticket_lock tl; /* first: its debug metadata names the lock */
	uint32_t spinners;     /* CPUs spinning on this lock: the break request */
#ifdef BRK_AUDIT
	struct brk_audit audit;
#endif
};

#define BRK_LOCK_INIT(n)                  \
	{                                 \
		.tl = TICKET_LOCK_INIT(n) \
	}

void brk_lock_init(struct brk_lock *l);
void brk_lock(struct brk_lock *l);

/* Taking it without waiting, releasing it: the ticket lock's own. */
static inline bool brk_trylock(struct brk_lock *l)
{
	return ticket_trylock(&l->tl);
}
static inline void brk_unlock(struct brk_lock *l)
{
	ticket_unlock(&l->tl);
}
static inline bool brk_is_locked(const struct brk_lock *l)
{
	return ticket_is_locked(&l->tl);
}

/* The contention test that replaced break_lock in Linux: tail - head > 1. */
bool brk_is_contended(struct brk_lock *l);

/* Drop and retake @l if a CPU spins on it or the scheduler wants this CPU. */
bool cond_resched_lock(struct brk_lock *l);
/* The same, deciding with brk_is_contended() instead of need_lockbreak(). */
bool cond_resched_lock_contended(struct brk_lock *l);

/* Audit results (0 without BRK_AUDIT). */
uint32_t brk_lost_requests(const struct brk_lock *l);
uint32_t brk_audited_checks(const struct brk_lock *l);

/* Audit functions, shared with the legacy flag lock in broken.c. */
uint32_t brk_audit_pending(struct brk_audit *a);
bool brk_audit_verdict(struct brk_audit *a, uint32_t pending, bool answer);
bool brk_need_lockbreak_audited(struct brk_lock *l);

/* Is a break requested?  Called by the holder.  Without waiters: one load. */
static inline bool need_lockbreak(struct brk_lock *l)
{
#ifdef BRK_AUDIT
	return brk_need_lockbreak_audited(l);
#else
	return __atomic_load_n(&l->spinners, __ATOMIC_RELAXED) != 0;
#endif
}

#endif
