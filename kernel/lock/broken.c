/*
 * broken.c - two DELIBERATELY BROKEN locks.  A torture test that cannot fail
 * proves nothing; these give the tests something they must catch.
 *
 * 1. broken_lock: the ticket lock of ticket.c, except that the ticket is
 *    taken with a load of tail and a separate store of tail + 1 instead of
 *    one atomic fetch-and-add.  Two CPUs that load tail before either stores
 *    get the same ticket and are both admitted when head reaches it; a CPU
 *    whose stale store moves tail backwards hands out tickets already
 *    served.  Mutual exclusion fails, and updates made inside the critical
 *    section are lost.  A pause between the load and the store stands for
 *    the interrupt or preemption that opens this window in real life, so
 *    that a short test run hits it.
 *    A waiter enters once head has reached *or passed* its ticket.  With an
 *    atomic ticket that is the same test (head never passes a waiting
 *    ticket); here it turns a ticket that was skipped into a second CPU in
 *    the critical section, which the torture test counts, instead of a
 *    waiter stuck until the 16-bit counters wrap.  As a last resort a wait
 *    gives up after BROKEN_SPIN_BAILOUT_NS and enters anyway (counted in
 *    ->bailouts), so a torture run always ends.
 *
 * 2. brk_legacy_lock: the break_lock protocol of the 2.6 kernels on top of a
 *    correct ticket lock.  A spinner stores break_lock = 1 (and again
 *    whenever it sees it 0); the CPU that acquires the lock stores
 *    break_lock = 0.  The new holder's store is not ordered against the other
 *    spinners' stores, so it erases their requests; until a spinner notices
 *    and sets the flag again, need_lockbreak() answers "no" while CPUs spin.
 *    The same audit as breakable.c counts these lost requests; the host test
 *    expects a non-zero count (breakable.c's count design must give 0).
 */
#include "broken.h"
#include "registry.h"

#define BROKEN_SPIN_BAILOUT_NS 20000000ull /* 20 ms */
#define BROKEN_WINDOW_PAUSES 64

void broken_lock_init(struct broken_lock *l)
{
	*l = (struct broken_lock)BROKEN_LOCK_INIT;
}

void broken_lock(struct broken_lock *l)
{
	/* WRONG ON PURPOSE: a load and a store, not an atomic fetch-and-add. */
	uint16_t me = __atomic_load_n(&l->tail, __ATOMIC_RELAXED);
	uint64_t start = 0;
	unsigned int spins = 0;

	/*
	 * The window an interrupt or a preemption would open.  Wide enough that
	 * two CPUs running at once land in it often, even on a loaded host
	 * where they overlap only part of the time: the test must catch it.
	 */
	for (int i = 0; i < BROKEN_WINDOW_PAUSES; i++)
		cpu_relax();
	__atomic_store_n(&l->tail, (uint16_t)(me + 1), __ATOMIC_RELAXED);

	while ((int16_t)(__atomic_load_n(&l->head, __ATOMIC_ACQUIRE) - me) < 0) {
		cpu_relax();
		if ((++spins & 1023) == 0) {
			uint64_t now = arch_now_ns();

			if (!start) {
				start = now;
			} else if (now - start > BROKEN_SPIN_BAILOUT_NS) {
				__atomic_fetch_add(&l->bailouts, 1, __ATOMIC_RELAXED);
				return;
			}
		}
	}
}

void broken_unlock(struct broken_lock *l)
{
	uint16_t head = __atomic_load_n(&l->head, __ATOMIC_RELAXED);

	__atomic_store_n(&l->head, (uint16_t)(head + 1), __ATOMIC_RELEASE);
}

/* ---- legacy break_lock ---------------------------------------------------- */

void brk_legacy_init(struct brk_legacy_lock *l)
{
	ticket_lock_init(&l->tl);
	l->break_lock = 0;
	l->audit = (struct brk_audit){0, 0, 0, 0};
}

void brk_legacy_lock(struct brk_legacy_lock *l)
{
	uint32_t old = __atomic_fetch_add(&l->tl.val, TICKET_TAIL_ONE, __ATOMIC_ACQUIRE);
	uint16_t me = (uint16_t)(old >> 16);

	if ((uint16_t)old != me) {
		__atomic_store_n(&l->break_lock, 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&l->audit.registered, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&l->tl.head, __ATOMIC_ACQUIRE) != me) {
			if (!__atomic_load_n(&l->break_lock, __ATOMIC_RELAXED))
				__atomic_store_n(&l->break_lock, 1, __ATOMIC_RELAXED);
			cpu_relax();
		}
		__atomic_fetch_add(&l->audit.granted, 1, __ATOMIC_SEQ_CST);
	}
	/* WRONG ON PURPOSE: the new holder "consumes" everybody's request. */
	__atomic_store_n(&l->break_lock, 0, __ATOMIC_RELAXED);
}

void brk_legacy_unlock(struct brk_legacy_lock *l)
{
	uint16_t head = __atomic_load_n(&l->tl.head, __ATOMIC_RELAXED);

	__atomic_store_n(&l->tl.head, (uint16_t)(head + 1), __ATOMIC_RELEASE);
}

bool brk_legacy_need_lockbreak(struct brk_legacy_lock *l)
{
	uint32_t pending = brk_audit_pending(&l->audit);
	bool answer = __atomic_load_n(&l->break_lock, __ATOMIC_SEQ_CST) != 0;

	return brk_audit_verdict(&l->audit, pending, answer);
}

bool brk_legacy_cond_resched_lock(struct brk_legacy_lock *l)
{
	if (!brk_legacy_need_lockbreak(l))
		return false;
	brk_legacy_unlock(l);
	brk_legacy_lock(l);
	return true;
}

uint32_t brk_legacy_lost_requests(const struct brk_legacy_lock *l)
{
	return __atomic_load_n(&l->audit.lost, __ATOMIC_RELAXED);
}

/* ---- The registry descriptor (registry.h): the suites must catch it (XFAIL). */

static void broken_type_init(void *l, const char *name)
{
	(void)name;
	broken_lock_init(l);
}
static void broken_type_lock(void *l)
{
	broken_lock(l);
}
static void broken_type_unlock(void *l)
{
	broken_unlock(l);
}

static const struct lock_type broken_type = {
    .name = "broken",
    .origin = "the ticket lock with its ticket taken by a load and a store",
    .props = LOCK_PROP_BROKEN,
    .max_nesting = 0,
    .size = sizeof(struct broken_lock),
    .init = broken_type_init,
    .lock = broken_type_lock,
    .unlock = broken_type_unlock,
};
LOCK_TYPE_REGISTER(broken_type);
