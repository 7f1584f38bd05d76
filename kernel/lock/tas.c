/*
 * tas.c - test-and-test-and-set spinlock with bounded exponential backoff.
 *
 * Algorithm.  One word, 0 = free, 1 = held.  To acquire, atomically exchange 1
 * into the word; the old value 0 means we own the lock.  A failed exchange
 * is not retried at once: the waiter first spins reading the word ("test")
 * until it looks free, since plain reads are served from its own cache while
 * an exchange pulls the line over exclusively and invalidates every other
 * spinner.  After each exchange lost to another CPU the waiter backs off for
 * a delay that doubles, from TAS_BACKOFF_MIN to TAS_BACKOFF_MAX pauses, so
 * that a crowd released at once does not retry in lockstep.
 *
 * Memory ordering.  The winning exchange is an acquire: the critical section
 * cannot be seen to start before it.  Release stores 0 with release ordering,
 * so every write in the critical section is visible to whoever next reads the
 * 0 and wins its exchange.  The "test" reads are relaxed; they only decide
 * when to try.
 *
 * Fairness: none.  Whoever's exchange reaches the line first wins; a CPU close
 * to the line (same core or socket as the releaser) can win again and again.
 * This is the unfair baseline the queued locks are measured against.
 */
#include "tas.h"
#include "registry.h"

#define TAS_BACKOFF_MIN 4u
#define TAS_BACKOFF_MAX 1024u

void tas_lock_init(struct tas_lock *l)
{
	*l = (struct tas_lock)TAS_LOCK_INIT(NULL);
}

void tas_lock(struct tas_lock *l)
{
	struct lock_wait w;
	unsigned int backoff = TAS_BACKOFF_MIN;

	lock_debug_before(LOCK_META(l), l);
	if (lock_likely(!__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))) {
		lock_acquired(LOCK_META(l), NULL);
		return;
	}
	lock_wait_begin(&w);
	for (;;) {
		while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED)) {
			cpu_relax();
			lock_wait_spin(&w, LOCK_META(l), l);
		}
		if (!__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
			break;
		for (unsigned int i = 0; i < backoff; i++) {
			cpu_relax();
			lock_wait_spin(&w, LOCK_META(l), l);
		}
		if (backoff < TAS_BACKOFF_MAX)
			backoff <<= 1;
	}
	lock_acquired(LOCK_META(l), &w);
}

bool tas_trylock(struct tas_lock *l)
{
	if (__atomic_load_n(&l->locked, __ATOMIC_RELAXED) ||
	    __atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
		return false;
	lock_acquired(LOCK_META(l), NULL);
	return true;
}

void tas_unlock(struct tas_lock *l)
{
	lock_released(LOCK_META(l), l);
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

bool tas_is_locked(const struct tas_lock *l)
{
	return __atomic_load_n(&l->locked, __ATOMIC_RELAXED) != 0;
}

/* ---- The registry descriptor (registry.h): what every suite tests and measures. */

static void tas_type_init(void *l, const char *name)
{
	struct tas_lock *lk = l;

	tas_lock_init(lk);
	lock_set_name(lk, name);
}
static void tas_type_lock(void *l)
{
	tas_lock(l);
}
static void tas_type_unlock(void *l)
{
	tas_unlock(l);
}
static bool tas_type_trylock(void *l)
{
	return tas_trylock(l);
}
static bool tas_type_is_locked(const void *l)
{
	return tas_is_locked(l);
}

static const struct lock_type tas_type = {
    .name = "tas",
    .origin = "Anderson, \"The performance of spin lock alternatives\", IEEE TPDS 1990",
    .props = LOCK_PROP_IRQ_SAFE,
    .max_nesting = 0,
    .size = sizeof(struct tas_lock),
    .init = tas_type_init,
    .lock = tas_type_lock,
    .unlock = tas_type_unlock,
    .trylock = tas_type_trylock,
    .is_locked = tas_type_is_locked,
};
LOCK_TYPE_REGISTER(tas_type);
