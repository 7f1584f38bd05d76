/*
 * breakable.c - breakable spinlock (Molnar's break_lock, made lossless).
 *
 * The problem.  A long critical section can offer to step aside with
 * cond_resched_lock(): drop the lock, let someone else in, retake it.  Without
 * a signal from the waiters the holder only knows when *it* should
 * reschedule, not when another CPU spins on the lock, possibly at a deeper
 * nesting level while holding other locks itself.  Molnar's -Q7 added
 * lock->break_lock, set by a spinning CPU, tested by the holder with
 * need_lockbreak().
 *
 * Why a flag loses requests.  In that design a waiter stored 1 into
 * break_lock and the CPU that next acquired the lock stored 0, "consuming"
 * the request.  Nothing orders the new holder's store 0 against the stores 1
 * of the waiters still spinning behind it: a waiter that set the flag just
 * before the new holder cleared it is wiped out, and the holder's next
 * need_lockbreak() says "no" although a CPU spins.  (Linux removed the field
 * in 2017, commit d89c70356acf, in favour of the contention test below.)  broken.c keeps that
 * protocol and the host test shows the loss.
 *
 * The fix: nobody clears anything.  spinners counts the CPUs spinning on the
 * lock.  A waiter atomically increments it when it starts to spin and
 * decrements it once it holds the lock; need_lockbreak() is spinners != 0.
 * Every change is an atomic read-modify-write of the waiter's own
 * contribution, so one CPU can never erase another's request: a request is
 * withdrawn only by its own waiter, and only after that waiter got the lock,
 * which cannot happen while the asking holder still holds it.  The holder's
 * check costs one load of a word in the lock's own cache line.  Nesting is
 * free: the count lives in the lock, so a CPU spinning on an inner lock while
 * it holds outer ones is seen by the inner lock's holder, whatever else
 * either of them holds.
 *
 * Lock algorithm: a ticket lock (see ticket.c): FIFO, so when the holder
 * drops the lock in cond_resched_lock() and queues again, the spinner really
 * gets it first.  brk_is_contended() is the ticket contention test
 * (tail - head > 1) that replaced break_lock in Linux; cond_resched_lock()
 * and cond_resched_lock_contended() let both be measured side by side.
 *
 * Memory ordering.  Mutual exclusion is the ticket lock's (acquire on the
 * ticket fetch-add and head load, release on the head store).  spinners is
 * only advisory, so need_lockbreak() may load it relaxed: the increment is an
 * atomic RMW and becomes visible to the holder's next load in bounded time;
 * no one can overwrite it in between.
 *
 * Audit (BRK_AUDIT, on with LOCK_DEBUG): counts lost requests so that a test
 * can assert there are none.  A waiter increments audit.registered right
 * after spinners, and audit.granted right before it decrements spinners.
 * The holder's audited check loads registered, then granted, then the answer
 * (spinners, or the ticket word), all sequentially consistent.  While we hold
 * the lock no waiter can be granted, so registered - granted > 0 means some
 * waiter registered before our load of registered, hence incremented
 * spinners (and took its ticket) before our load of the answer: the answer
 * must be "yes".  A "no" there is a lost request and is counted.
 *
 * Fairness: FIFO (ticket).
 */
#include "breakable.h"
#include "registry.h"

void brk_lock_init(struct brk_lock *l)
{
	*l = (struct brk_lock)BRK_LOCK_INIT(NULL);
}

void brk_lock(struct brk_lock *l)
{
	struct ticket_lock *tl = &l->tl;
	uint32_t old;
	uint16_t me;
	struct lock_wait w;

	/* ticket_lock()'s, with the request registered while it waits. */
	lock_debug_before(LOCK_META(tl), l);
	old = __atomic_fetch_add(&tl->val, TICKET_TAIL_ONE, __ATOMIC_ACQUIRE);
	me = (uint16_t)(old >> 16);
	if (lock_likely((uint16_t)old == me)) {
		lock_acquired(LOCK_META(tl), NULL);
		return;
	}
	/* Register the break request... */
	__atomic_fetch_add(&l->spinners, 1, __ATOMIC_SEQ_CST);
#ifdef BRK_AUDIT
	__atomic_fetch_add(&l->audit.registered, 1, __ATOMIC_SEQ_CST);
#endif
	lock_wait_begin(&w);
	while (__atomic_load_n(&tl->head, __ATOMIC_ACQUIRE) != me) {
		cpu_relax();
		lock_wait_spin(&w, LOCK_META(tl), l);
	}
	/* ...and withdraw it, now that it has been served. */
#ifdef BRK_AUDIT
	__atomic_fetch_add(&l->audit.granted, 1, __ATOMIC_SEQ_CST);
#endif
	__atomic_fetch_sub(&l->spinners, 1, __ATOMIC_RELAXED);
	lock_acquired(LOCK_META(tl), &w);
}

/* ---- audit ------------------------------------------------------------- */

/* Requests registered and not yet granted; load before the answer. */
uint32_t brk_audit_pending(struct brk_audit *a)
{
	uint32_t reg = __atomic_load_n(&a->registered, __ATOMIC_SEQ_CST);
	uint32_t got = __atomic_load_n(&a->granted, __ATOMIC_SEQ_CST);

	return reg - got;
}

bool brk_audit_verdict(struct brk_audit *a, uint32_t pending, bool answer)
{
	__atomic_fetch_add(&a->checks, 1, __ATOMIC_RELAXED);
	if (pending && !answer)
		__atomic_fetch_add(&a->lost, 1, __ATOMIC_RELAXED);
	return answer;
}

#ifdef BRK_AUDIT
/* The audit reasons about the holder's view; skip calls from anyone else. */
static bool caller_holds(struct brk_lock *l)
{
#ifdef LOCK_DEBUG
	return lock_owner_cpu(LOCK_META(&l->tl)) == arch_cpu_id();
#else
	(void)l;
	return true;
#endif
}
#endif

bool brk_need_lockbreak_audited(struct brk_lock *l)
{
#ifdef BRK_AUDIT
	if (caller_holds(l)) {
		uint32_t pending = brk_audit_pending(&l->audit);
		bool answer = __atomic_load_n(&l->spinners, __ATOMIC_SEQ_CST) != 0;

		return brk_audit_verdict(&l->audit, pending, answer);
	}
#endif
	return __atomic_load_n(&l->spinners, __ATOMIC_RELAXED) != 0;
}

/* ticket_is_contended(), with the ordering the audit needs. */
static bool contended(const struct brk_lock *l, int mo)
{
	uint32_t v = __atomic_load_n(&l->tl.val, mo);

	return (uint16_t)((uint16_t)(v >> 16) - (uint16_t)v) > 1;
}

bool brk_is_contended(struct brk_lock *l)
{
#ifdef BRK_AUDIT
	if (caller_holds(l)) {
		uint32_t pending = brk_audit_pending(&l->audit);

		return brk_audit_verdict(&l->audit, pending, contended(l, __ATOMIC_SEQ_CST));
	}
#endif
	return contended(l, __ATOMIC_RELAXED);
}

uint32_t brk_lost_requests(const struct brk_lock *l)
{
#ifdef BRK_AUDIT
	return __atomic_load_n(&l->audit.lost, __ATOMIC_RELAXED);
#else
	(void)l;
	return 0;
#endif
}

uint32_t brk_audited_checks(const struct brk_lock *l)
{
#ifdef BRK_AUDIT
	return __atomic_load_n(&l->audit.checks, __ATOMIC_RELAXED);
#else
	(void)l;
	return 0;
#endif
}

/* ---- lock breaking ----------------------------------------------------- */

static bool lock_break(struct brk_lock *l)
{
	brk_unlock(l);
	lock_cond_resched();
	brk_lock(l);
	return true;
}

bool cond_resched_lock(struct brk_lock *l)
{
	if (need_lockbreak(l) || arch_need_resched())
		return lock_break(l);
	return false;
}

bool cond_resched_lock_contended(struct brk_lock *l)
{
	if (brk_is_contended(l) || arch_need_resched())
		return lock_break(l);
	return false;
}

/* ---- The registry descriptor (registry.h): what every suite tests and measures. */

static void brk_type_init(void *l, const char *name)
{
	struct brk_lock *lk = l;

	brk_lock_init(lk);
	lock_set_name(&lk->tl, name);
}
static void brk_type_lock(void *l)
{
	brk_lock(l);
}
static void brk_type_unlock(void *l)
{
	brk_unlock(l);
}
static bool brk_type_trylock(void *l)
{
	return brk_trylock(l);
}
static bool brk_type_is_locked(const void *l)
{
	return brk_is_locked(l);
}
/* The contention test without the audit (a suite asks, not the holder). */
static bool brk_type_is_contended(const void *l)
{
	return contended(l, __ATOMIC_RELAXED);
}

static int brk_type_queue_len(const void *l)
{
	uint32_t v = __atomic_load_n(&((const struct brk_lock *)l)->tl.val, __ATOMIC_RELAXED);

	return (uint16_t)((uint16_t)(v >> 16) - (uint16_t)v);
}

static const struct lock_type brk_type = {
    .name = "breakable",
    .origin = "Linux 2.6 break_lock/need_lockbreak; Linux 2.6.25 \"spinlock: lockbreak cleanup\"",
    .props = LOCK_PROP_FIFO | LOCK_PROP_IRQ_SAFE,
    .max_nesting = 0,
    .size = sizeof(struct brk_lock),
    .init = brk_type_init,
    .lock = brk_type_lock,
    .unlock = brk_type_unlock,
    .trylock = brk_type_trylock,
    .is_locked = brk_type_is_locked,
    .is_contended = brk_type_is_contended,
    .queue_len = brk_type_queue_len,
};
LOCK_TYPE_REGISTER(brk_type);
