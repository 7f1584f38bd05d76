/*
 * The rt-mutex: a sleeping lock whose waiters queue by priority and lend
 * it to the owner (priority inheritance), transitively along a chain of
 * owners each blocked on the next lock; and the preempt=rt spinlock_t.
 *
 * Fast paths.  The owner word (lock/rtmutex.h) is the owning thread with
 * bit 0 set while anybody waits.  An uncontended lock is one
 * compare-and-swap 0 -> me, an uncontended unlock one swap me -> 0.  The
 * first waiter sets bit 0, which makes both fail from then on, so every
 * change with waiters goes through the slow paths below.
 *
 * Slow paths.  One global lock, pi_lock, covers every wait list, every
 * thread's list of inherited waiters (pi_waiters: the top waiter of each
 * rt-mutex it owns), every blocked_on link and every inherited priority.
 * Contended rt-mutexes are rare and short here; one lock makes the chain
 * walk plainly correct: nothing in the chain moves while it is walked.
 *
 * Inheritance.  A thread's effective priority is the highest of its base
 * priority and its pi_waiters' priorities.  When it changes and the thread
 * is itself blocked on an rt-mutex, its waiter is requeued there at the
 * new priority, the owner's pi_waiters get that lock's (possibly new) top
 * waiter, and the owner's priority is derived again, and so on up the
 * chain until a priority stops changing or a thread is not blocked.
 *
 * Deadlock.  Before it blocks, a thread follows owner -> blocked_on ->
 * owner ... from the lock it wants; reaching itself closes a cycle.  The
 * cycle is printed (`# rtmutex: deadlock: ...`) and the lock call returns
 * -EDEADLK (rt_mutex_lock_checked) or panics (rt_mutex_lock, spinlock_t).
 *
 * Hand-over.  Unlock with waiters leaves the lock free with bit 0 set and
 * wakes the top waiter, which takes it when it runs; a thread of strictly
 * higher priority may take it first (a steal), and the woken waiter then
 * waits again.  Unlock gives back the priority the lock lent, which may let
 * a higher-priority thread in at once (full and rt).
 */
#include "internal.h"
#include "irq.h"
#include "kernel.h"

#define MAX_CHAIN 64
#define RT_SPIN_TIMEOUT_NS (2 * NSEC_PER_SEC)

struct rt_waiter {
	struct thread *task;
	struct rt_mutex *lock;
	int prio;
	struct rt_waiter *next, *prev;       /* the lock's wait list */
	struct rt_waiter *pi_next, *pi_prev; /* the owner's pi_waiters */
	bool in_pi;
};

static struct ticket_lock pi_lock = TICKET_LOCK_INIT("sched.pi_lock");

static struct thread *owner_of(const struct rt_mutex *m)
{
	return (struct thread *)(__atomic_load_n(&m->owner, __ATOMIC_ACQUIRE) &
	                         ~RT_MUTEX_HAS_WAITERS);
}

static const char *lock_name(const struct rt_mutex *m)
{
	return m->name ? m->name : "(unnamed)";
}

/* ---- Priority-ordered lists: after every entry of equal or higher priority. */

static void wait_insert(struct rt_mutex *m, struct rt_waiter *w)
{
	struct rt_waiter **pp = &m->waiters, *prev = NULL;

	while (*pp && (*pp)->prio >= w->prio) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	w->next = *pp;
	w->prev = prev;
	if (*pp)
		(*pp)->prev = w;
	*pp = w;
}

static void wait_remove(struct rt_mutex *m, struct rt_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		m->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->next = w->prev = NULL;
}

static void pi_insert(struct thread *t, struct rt_waiter *w)
{
	struct rt_waiter **pp = &t->pi_waiters, *prev = NULL;

	while (*pp && (*pp)->prio >= w->prio) {
		prev = *pp;
		pp = &(*pp)->pi_next;
	}
	w->pi_next = *pp;
	w->pi_prev = prev;
	if (*pp)
		(*pp)->pi_prev = w;
	*pp = w;
	w->in_pi = true;
}

static void pi_remove(struct thread *t, struct rt_waiter *w)
{
	if (w->pi_prev)
		w->pi_prev->pi_next = w->pi_next;
	else
		t->pi_waiters = w->pi_next;
	if (w->pi_next)
		w->pi_next->pi_prev = w->pi_prev;
	w->pi_next = w->pi_prev = NULL;
	w->in_pi = false;
}

/* Take m's waiter (there is at most one) off owner o's pi_waiters. */
static void pi_drop_lock(struct thread *o, struct rt_mutex *m)
{
	for (struct rt_waiter *w = o->pi_waiters; w; w = w->pi_next) {
		if (w->lock == m) {
			pi_remove(o, w);
			return;
		}
	}
}

/* Make owner o's pi_waiters hold m's current top waiter (or none of m's). */
static void pi_requeue_top(struct thread *o, struct rt_mutex *m)
{
	pi_drop_lock(o, m);
	if (m->waiters && !(m->flags & RT_MUTEX_NO_PI))
		pi_insert(o, m->waiters);
}

static int effective_prio(const struct thread *t)
{
	int p = t->base_prio;

	if (t->pi_waiters && t->pi_waiters->prio > p)
		p = t->pi_waiters->prio;
	return p;
}

/* t's inherited priority may have changed: apply it, and carry it up the chain. */
static void pi_adjust(struct thread *t)
{
	for (int depth = 0; t && depth < MAX_CHAIN; depth++) {
		int p = effective_prio(t);
		if (p == t->prio)
			return;
		sched_change_prio(t, p);
		struct rt_waiter *w = t->blocked_on;
		if (!w)
			return;
		struct rt_mutex *m = w->lock;
		wait_remove(m, w);
		w->prio = p;
		wait_insert(m, w);
		struct thread *o = owner_of(m);
		if (!o || (m->flags & RT_MUTEX_NO_PI))
			return;
		pi_requeue_top(o, m);
		t = o;
	}
}

void pi_set_base_prio(struct thread *t, int prio)
{
	unsigned long flags = local_irq_save();

	ticket_lock(&pi_lock);
	t->base_prio = prio;
	pi_adjust(t);
	ticket_unlock(&pi_lock);
	local_irq_restore(flags);
}

/* ---- Taking the lock (pi_lock held). */

static void mark_waiters(struct rt_mutex *m)
{
	uintptr_t o = __atomic_load_n(&m->owner, __ATOMIC_RELAXED);

	while (!(o & RT_MUTEX_HAS_WAITERS) &&
	       !__atomic_compare_exchange_n(&m->owner, &o, o | RT_MUTEX_HAS_WAITERS, false,
	                                    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		;
}

/* The lock has no waiters: clear bit 0 unless a fast path slipped in (it cannot: bit set). */
static void clear_waiters_if_none(struct rt_mutex *m)
{
	if (!m->waiters)
		__atomic_fetch_and(&m->owner, ~RT_MUTEX_HAS_WAITERS, __ATOMIC_RELEASE);
}

/*
 * Try to take m for `me`.  `w`: me's queued waiter, which must be the top
 * one; NULL: a newcomer, which may take a free lock ahead of its waiters
 * only with a strictly higher priority (or `force`, from a context that
 * cannot sleep and so never queues).
 */
static bool try_take(struct rt_mutex *m, struct thread *me, struct rt_waiter *w, bool force)
{
	mark_waiters(m); /* from here the fast paths stay out until we decide */
	if (owner_of(m)) {
		clear_waiters_if_none(m);
		return false;
	}
	struct rt_waiter *top = m->waiters;
	if (top && w != top && !force && (w || me->prio <= top->prio))
		return false;
	if (w) {
		wait_remove(m, w);
		me->blocked_on = NULL;
	}
	bool waiters = m->waiters != NULL;
	__atomic_store_n(&m->owner, (uintptr_t)me | (waiters ? RT_MUTEX_HAS_WAITERS : 0),
	                 __ATOMIC_RELEASE);
	if (waiters && !(m->flags & RT_MUTEX_NO_PI)) {
		pi_requeue_top(me, m);
		pi_adjust(me);
	}
	return true;
}

/* ---- Deadlock detection. */

static bool chain_closes(struct rt_mutex *m, struct thread *me)
{
	struct thread *o = owner_of(m);

	for (int depth = 0; o && depth < MAX_CHAIN; depth++) {
		if (o == me)
			return true;
		if (!o->blocked_on)
			return false;
		o = owner_of(o->blocked_on->lock);
	}
	return o != NULL; /* a chain longer than MAX_CHAIN is reported as one */
}

static void report_deadlock(struct rt_mutex *m, struct thread *me)
{
	char buf[400];
	size_t n = 0;
	struct thread *o = owner_of(m);

	n += snprintf(buf + n, sizeof(buf) - n, "thread %d (%s) wants %s held by", me->id, me->name,
	              lock_name(m));
	for (int depth = 0; o && depth < MAX_CHAIN && n < sizeof(buf) - 80; depth++) {
		n += snprintf(buf + n, sizeof(buf) - n, " thread %d (%s)", o->id, o->name);
		if (o == me || !o->blocked_on)
			break;
		n += snprintf(buf + n, sizeof(buf) - n, ", which waits for %s held by",
		              lock_name(o->blocked_on->lock));
		o = owner_of(o->blocked_on->lock);
	}
	kprintf("# rtmutex: deadlock: %s\n", buf);
}

/* ---- Slow paths. */

static int slowlock(struct rt_mutex *m)
{
	struct thread *me = this_thread();
	struct rt_waiter w = {.task = me, .lock = m};
	unsigned long flags = local_irq_save();

	ticket_lock(&pi_lock);
	if (try_take(m, me, NULL, false))
		goto out;
	if (owner_of(m) == me)
		panic("rtmutex: recursive locking of %s by thread %d (%s)", lock_name(m), me->id,
		      me->name);
	if (chain_closes(m, me)) {
		report_deadlock(m, me);
		clear_waiters_if_none(m);
		ticket_unlock(&pi_lock);
		local_irq_restore(flags);
		return -EDEADLK;
	}
	w.prio = me->prio;
	wait_insert(m, &w);
	me->blocked_on = &w;
	struct thread *o = owner_of(m);
	if (o && !(m->flags & RT_MUTEX_NO_PI) && m->waiters == &w) {
		pi_requeue_top(o, m);
		pi_adjust(o);
	}
	for (;;) {
		if (try_take(m, me, &w, false))
			break;
		me->state = THREAD_BLOCKED;
		ticket_unlock(&pi_lock);
		sched_switch_out();
		ticket_lock(&pi_lock);
	}
	me->state = THREAD_RUNNING;
	me->blocked_on = NULL;
out:
	ticket_unlock(&pi_lock);
	local_irq_restore(flags);
	return 0;
}

static void slowunlock(struct rt_mutex *m)
{
	struct thread *me = this_thread();
	unsigned long flags = local_irq_save();

	ticket_lock(&pi_lock);
	if (owner_of(m) != me) {
		struct thread *o = owner_of(m);
		panic("rtmutex: %s unlocked by thread %d (%s), owner %s", lock_name(m), me->id,
		      me->name, o ? o->name : "none");
	}
	struct rt_waiter *top = m->waiters;
	if (!top) {
		__atomic_store_n(&m->owner, 0, __ATOMIC_RELEASE);
	} else {
		pi_drop_lock(me, m); /* m is no longer ours, nor is its waiters' priority */
		__atomic_store_n(&m->owner, RT_MUTEX_HAS_WAITERS, __ATOMIC_RELEASE);
		wake_up_thread(top->task);
		pi_adjust(me);
	}
	ticket_unlock(&pi_lock);
	local_irq_restore(flags);
}

/* ---- The API. */

void rt_mutex_init(struct rt_mutex *m, const char *name, unsigned flags)
{
	m->owner = 0;
	m->waiters = NULL;
	m->name = name;
	m->flags = flags;
}

static bool fast_lock(struct rt_mutex *m, struct thread *me)
{
	uintptr_t expected = 0;
	return __atomic_compare_exchange_n(&m->owner, &expected, (uintptr_t)me, false,
	                                   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static bool fast_unlock(struct rt_mutex *m, struct thread *me)
{
	uintptr_t expected = (uintptr_t)me;
	return __atomic_compare_exchange_n(&m->owner, &expected, 0, false, __ATOMIC_RELEASE,
	                                   __ATOMIC_RELAXED);
}

int rt_mutex_lock_checked(struct rt_mutex *m)
{
	if (!sched_can_sleep())
		panic("rt_mutex_lock(%s) where nothing may sleep (CPU %d, preempt_count %d)",
		      lock_name(m), smp_processor_id(), preempt_count());
	if (fast_lock(m, this_thread()))
		return 0;
	return slowlock(m);
}

void rt_mutex_lock(struct rt_mutex *m)
{
	if (rt_mutex_lock_checked(m) < 0)
		panic("rtmutex: deadlock on %s (cycle above)", lock_name(m));
}

bool rt_mutex_trylock(struct rt_mutex *m)
{
	struct thread *me = this_thread();

	if (fast_lock(m, me))
		return true;
	if (owner_of(m))
		return false;
	unsigned long flags = local_irq_save();
	ticket_lock(&pi_lock);
	bool got = try_take(m, me, NULL, false);
	ticket_unlock(&pi_lock);
	local_irq_restore(flags);
	return got;
}

void rt_mutex_unlock(struct rt_mutex *m)
{
	if (!fast_unlock(m, this_thread()))
		slowunlock(m);
	preempt_check();
}

struct thread *rt_mutex_owner(const struct rt_mutex *m)
{
	return owner_of(m);
}

bool rt_mutex_has_waiters(const struct rt_mutex *m)
{
	return __atomic_load_n(&m->waiters, __ATOMIC_ACQUIRE) != NULL;
}

/* ---- preempt=rt spinlock_t (spinlock.h). */

bool rt_spinlocks;

/* Where nothing may sleep: take it when free, never queue (no inheritance). */
static void rt_spin_atomic(struct rt_mutex *m, struct thread *me)
{
	uint64_t start = rdtsc();

	for (;;) {
		struct thread *o = owner_of(m);
		if (!o) {
			unsigned long flags = local_irq_save();
			ticket_lock(&pi_lock);
			bool got = try_take(m, me, NULL, true);
			ticket_unlock(&pi_lock);
			local_irq_restore(flags);
			if (got)
				return;
			continue;
		}
		if (o == me)
			panic("spinlock_t %s: recursive locking by thread %d (%s)", lock_name(m),
			      me->id, me->name);
		if (o->cpu == smp_processor_id() && !__atomic_load_n(&o->on_cpu, __ATOMIC_ACQUIRE))
			panic("spinlock_t %s taken where nothing may sleep (CPU %d, preempt_count "
			      "%d, "
			      "irq_depth %d) while its owner, thread %d (%s), is preempted on this "
			      "CPU: under preempt=rt such data needs a raw_spinlock_t",
			      lock_name(m), smp_processor_id(), preempt_count(),
			      this_cpu()->irq_depth, o->id, o->name);
		if (tsc_to_ns(rdtsc() - start) > RT_SPIN_TIMEOUT_NS)
			panic(
			    "spinlock_t %s: spun %llu ms where nothing may sleep; owner thread %d "
			    "(%s) on CPU %d",
			    lock_name(m), (unsigned long long)(RT_SPIN_TIMEOUT_NS / NSEC_PER_MSEC),
			    o->id, o->name, o->cpu);
		cpu_relax();
	}
}

void rt_spin_lock(struct rt_mutex *m)
{
	struct thread *me = this_thread();

	if (!fast_lock(m, me)) {
		if (sched_can_sleep()) {
			if (slowlock(m) < 0)
				panic("spinlock_t deadlock on %s (cycle above)", lock_name(m));
		} else {
			rt_spin_atomic(m, me);
		}
	}
	me->migrate_disable++; /* per-CPU data under a spinlock_t stays per-CPU */
}

bool rt_spin_trylock(struct rt_mutex *m)
{
	if (!rt_mutex_trylock(m))
		return false;
	this_thread()->migrate_disable++;
	return true;
}

void rt_spin_unlock(struct rt_mutex *m)
{
	struct thread *me = this_thread();

	me->migrate_disable--;
	if (!fast_unlock(m, me))
		slowunlock(m);
	preempt_check();
}
