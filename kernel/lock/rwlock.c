/*
 * rwlock.c - writer-fair reader-writer spinlock (in the style of a queued
 * rwlock: one counter word plus a FIFO lock for everybody who must wait).
 *
 * Algorithm.  cnts holds the number of readers (in units of RW_READER), a
 * "writer waiting" bit and a "writer holds it" byte.
 *  - read_lock fast path: add RW_READER; if no writer bit is set, done.
 *    Otherwise take the reader count back and queue on the wait lock; once
 *    at its head, add RW_READER again, wait for the holding writer (if any)
 *    to leave, and pass the wait lock on, so that readers queued behind
 *    enter together.
 *  - write_lock fast path: compare-and-swap 0 -> RW_WLOCKED.  Otherwise
 *    queue on the wait lock; at its head, set RW_WWAITING, wait until cnts is
 *    exactly RW_WWAITING (readers drained, no writer), swap it for
 *    RW_WLOCKED, and leave the wait lock.
 *  - write_unlock stores 0 into the RW_WLOCKED byte (a waiting writer's
 *    RW_WWAITING bit, in the next byte, survives).  read_unlock subtracts
 *    RW_READER.
 * Writer fairness: once a writer waits, RW_WWAITING sends every new reader
 * to the slow path, where it queues behind that writer.  Readers in the
 * lock already finish, no new one starts, so the writer gets in after the
 * current readers, and a stream of readers cannot starve it.  Among the
 * slow paths the order is the wait lock's FIFO.  Readers may not recurse
 * (a second read_lock behind a waiting writer would deadlock).
 *
 * Memory ordering.  Readers acquire with the fetch-add (fast path) or the
 * acquire load that sees no RW_WLOCKED (slow path); writers acquire with the
 * compare-and-swap.  Both unlocks are releases (the subtraction, the byte
 * store), so a writer's critical section happens before the readers that
 * follow it, and the readers' before the next writer's swap that sees their
 * count gone.
 */
#include "rwlock.h"
#include "registry.h"

void rwlock_init(rwlock_t *l)
{
	*l = (rwlock_t)RWLOCK_INIT(NULL);
}

static void read_check_recursion(rwlock_t *l)
{
#ifdef LOCK_DEBUG
	if (lock_unlikely(lock_owner_cpu(LOCK_META(l)) == arch_cpu_id()))
		lock_recursion(LOCK_META(l), l, "read_lock while holding the write lock");
#else
	(void)l;
#endif
}

void read_lock(rwlock_t *l)
{
	struct lock_wait w;
	uint32_t c;

	read_check_recursion(l);
	c = __atomic_fetch_add(&l->cnts, RW_READER, __ATOMIC_ACQUIRE);
	if (lock_likely(!(c & RW_WMASK)))
		return;
	__atomic_fetch_sub(&l->cnts, RW_READER, __ATOMIC_RELAXED);

	ticket_lock(&l->wait);
	__atomic_fetch_add(&l->cnts, RW_READER, __ATOMIC_RELAXED);
	lock_wait_begin(&w);
	while (__atomic_load_n(&l->cnts, __ATOMIC_ACQUIRE) & RW_WLOCKED) {
		cpu_relax();
		lock_wait_spin(&w, LOCK_META(l), l);
	}
	ticket_unlock(&l->wait);
}

bool read_trylock(rwlock_t *l)
{
	uint32_t c = __atomic_load_n(&l->cnts, __ATOMIC_RELAXED);

	if (c & RW_WMASK)
		return false;
	c = __atomic_fetch_add(&l->cnts, RW_READER, __ATOMIC_ACQUIRE);
	if (lock_likely(!(c & RW_WMASK)))
		return true;
	__atomic_fetch_sub(&l->cnts, RW_READER, __ATOMIC_RELAXED);
	return false;
}

void read_unlock(rwlock_t *l)
{
	__atomic_fetch_sub(&l->cnts, RW_READER, __ATOMIC_RELEASE);
}

void write_lock(rwlock_t *l)
{
	uint32_t expect = 0;
	struct lock_wait w;

	lock_debug_before(LOCK_META(l), l);
	if (lock_likely(__atomic_compare_exchange_n(&l->cnts, &expect, RW_WLOCKED, false,
	                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))) {
		lock_acquired(LOCK_META(l), NULL);
		return;
	}
	ticket_lock(&l->wait);
	__atomic_fetch_or(&l->cnts, RW_WWAITING, __ATOMIC_RELAXED);
	lock_wait_begin(&w);
	for (;;) {
		expect = RW_WWAITING;
		if (__atomic_load_n(&l->cnts, __ATOMIC_RELAXED) == RW_WWAITING &&
		    __atomic_compare_exchange_n(&l->cnts, &expect, RW_WLOCKED, false,
		                                __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			break;
		cpu_relax();
		lock_wait_spin(&w, LOCK_META(l), l);
	}
	ticket_unlock(&l->wait);
	lock_acquired(LOCK_META(l), &w);
}

bool write_trylock(rwlock_t *l)
{
	uint32_t expect = 0;

	if (__atomic_load_n(&l->cnts, __ATOMIC_RELAXED) ||
	    !__atomic_compare_exchange_n(&l->cnts, &expect, RW_WLOCKED, false, __ATOMIC_ACQUIRE,
	                                 __ATOMIC_RELAXED))
		return false;
	lock_acquired(LOCK_META(l), NULL);
	return true;
}

void write_unlock(rwlock_t *l)
{
	lock_released(LOCK_META(l), l);
	__atomic_store_n(&l->wlocked, 0, __ATOMIC_RELEASE);
}

bool rwlock_writer_waiting(const rwlock_t *l)
{
	return (__atomic_load_n(&l->cnts, __ATOMIC_RELAXED) & RW_WWAITING) != 0;
}

/* ---- The registry descriptor (registry.h): lock/unlock are the writer's. */

static void rw_type_init(void *l, const char *name)
{
	rwlock_t *rw = l;

	rwlock_init(rw);
	lock_set_name(rw, name);
}
static void rw_type_lock(void *l)
{
	write_lock(l);
}
static void rw_type_unlock(void *l)
{
	write_unlock(l);
}
static bool rw_type_trylock(void *l)
{
	return write_trylock(l);
}
static bool rw_type_is_locked(const void *l)
{
	return __atomic_load_n(&((const rwlock_t *)l)->cnts, __ATOMIC_RELAXED) != 0;
}
static void rw_type_read_lock(void *l)
{
	read_lock(l);
}
static void rw_type_read_unlock(void *l)
{
	read_unlock(l);
}

static const struct lock_type rw_type = {
    .name = "rwlock",
    .origin = "Linux queued rwlock (Waiman Long, 3.16): a counter word and a FIFO wait lock",
    .props = LOCK_PROP_RW,
    .max_nesting = 0,
    .size = sizeof(rwlock_t),
    .init = rw_type_init,
    .lock = rw_type_lock,
    .unlock = rw_type_unlock,
    .trylock = rw_type_trylock,
    .is_locked = rw_type_is_locked,
    .read_lock = rw_type_read_lock,
    .read_unlock = rw_type_read_unlock,
};
LOCK_TYPE_REGISTER(rw_type);
