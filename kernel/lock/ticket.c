/*
 * ticket.c - ticket spinlock.
 *
 * Algorithm.  Like the number machine at a deli counter: the lock word holds
 * two 16-bit counters, tail (next ticket to hand out) and head (ticket now
 * served).  A CPU takes a ticket with one atomic fetch-and-add on tail and
 * waits until head equals its ticket.  Unlock increments head, which only the
 * holder ever writes, so a plain load and a release store suffice.  The lock
 * is free when head == tail, and tail - head is the number of CPUs holding or
 * waiting for it, so "contended" (someone waits) is tail - head > 1.
 * Counters wrap at 2^16; the arithmetic is modular and works while fewer than
 * 65536 CPUs wait at once.
 *
 * The ticket is taken with a single 32-bit fetch-and-add of 1 << 16 on the
 * whole word: the returned old value carries both counters, so the
 * uncontended case (old head == old tail) costs exactly one atomic operation.
 * The addition cannot disturb head: a carry out of tail leaves bit 31 and is
 * dropped.
 *
 * Memory ordering.  Unlock's release store of head pairs with the acquire
 * load of head in the next holder's wait loop (or with the acquire fetch-add
 * that finds head == tail), so the previous critical section happens before
 * the next one.  The fetch-and-add is atomic, so no two CPUs get the same
 * ticket; that is the whole of the mutual exclusion argument (broken.c shows
 * what happens otherwise).
 *
 * Fairness: strict FIFO in the order of the fetch-and-add.  The price is that
 * the lock can only be handed to one particular CPU: if that waiter is not
 * running (a preempted vCPU, an overcommitted host thread), everyone behind
 * it waits too.  pvticket.c addresses exactly that.  All waiters spin on the
 * same line, which every unlock invalidates (mcs.c addresses that).
 */
#include "ticket.h"
#include "registry.h"

void ticket_lock_init(struct ticket_lock *l)
{
	*l = (struct ticket_lock)TICKET_LOCK_INIT(NULL);
}

void ticket_lock(struct ticket_lock *l)
{
	uint32_t old;
	uint16_t me;
	struct lock_wait w;

	lock_debug_before(LOCK_META(l), l);
	old = __atomic_fetch_add(&l->val, TICKET_TAIL_ONE, __ATOMIC_ACQUIRE);
	me = (uint16_t)(old >> 16);
	if (lock_likely((uint16_t)old == me)) {
		lock_acquired(LOCK_META(l), NULL);
		return;
	}
	lock_wait_begin(&w);
	while (__atomic_load_n(&l->head, __ATOMIC_ACQUIRE) != me) {
		cpu_relax();
		lock_wait_spin(&w, LOCK_META(l), l);
	}
	lock_acquired(LOCK_META(l), &w);
}

bool ticket_trylock(struct ticket_lock *l)
{
	uint32_t old = __atomic_load_n(&l->val, __ATOMIC_RELAXED);

	if ((uint16_t)old != (uint16_t)(old >> 16))
		return false;
	if (!__atomic_compare_exchange_n(&l->val, &old, old + TICKET_TAIL_ONE, false,
	                                 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return false;
	lock_acquired(LOCK_META(l), NULL);
	return true;
}

void ticket_unlock(struct ticket_lock *l)
{
	uint16_t head = __atomic_load_n(&l->head, __ATOMIC_RELAXED);

	lock_released(LOCK_META(l), l);
	__atomic_store_n(&l->head, (uint16_t)(head + 1), __ATOMIC_RELEASE);
}

bool ticket_is_locked(const struct ticket_lock *l)
{
	uint32_t v = __atomic_load_n(&l->val, __ATOMIC_RELAXED);

	return (uint16_t)v != (uint16_t)(v >> 16);
}

bool ticket_is_contended(const struct ticket_lock *l)
{
	uint32_t v = __atomic_load_n(&l->val, __ATOMIC_RELAXED);

	return (uint16_t)((uint16_t)(v >> 16) - (uint16_t)v) > 1;
}

/* ---- The registry descriptor (registry.h): what every suite tests and measures. */

static void ticket_type_init(void *l, const char *name)
{
	struct ticket_lock *lk = l;

	ticket_lock_init(lk);
	lock_set_name(lk, name);
}
static void ticket_type_lock(void *l)
{
	ticket_lock(l);
}
static void ticket_type_unlock(void *l)
{
	ticket_unlock(l);
}
static bool ticket_type_trylock(void *l)
{
	return ticket_trylock(l);
}
static bool ticket_type_is_locked(const void *l)
{
	return ticket_is_locked(l);
}
static bool ticket_type_is_contended(const void *l)
{
	return ticket_is_contended(l);
}

/* CPUs holding or waiting: tail - head. */
static int ticket_type_queue_len(const void *l)
{
	uint32_t v = __atomic_load_n(&((const struct ticket_lock *)l)->val, __ATOMIC_RELAXED);

	return (uint16_t)((uint16_t)(v >> 16) - (uint16_t)v);
}

static const struct lock_type ticket_type = {
    .name = "ticket",
    .origin =
        "Mellor-Crummey and Scott, ACM TOCS 1991; Linux 2.6.25 \"x86: FIFO ticket spinlocks\"",
    .props = LOCK_PROP_FIFO | LOCK_PROP_IRQ_SAFE,
    .max_nesting = 0,
    .size = sizeof(struct ticket_lock),
    .init = ticket_type_init,
    .lock = ticket_type_lock,
    .unlock = ticket_type_unlock,
    .trylock = ticket_type_trylock,
    .is_locked = ticket_type_is_locked,
    .is_contended = ticket_type_is_contended,
    .queue_len = ticket_type_queue_len,
};
LOCK_TYPE_REGISTER(ticket_type);
