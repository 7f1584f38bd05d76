/*
 * pvticket.c - paravirtual ticket lock (Fitzhardinge; Raghavendra K T).
 *
 * The problem.  A ticket lock hands the lock to one particular waiter.  When
 * CPUs are themselves scheduled (vCPUs on a busy host, threads on fewer
 * cores), that waiter may not be running: the lock is free, yet every CPU
 * behind it spins for the rest of its time slice.  Throughput collapses.
 *
 * Algorithm.  The fast path is the ticket lock, unchanged except that tickets
 * advance by 2, leaving bit 0 of tail for a "slow path" flag.  A waiter that
 * has spun pv_spin_threshold times without its turn:
 *   1. registers in its per-CPU slot which lock and which ticket it waits for
 *      (one slot per nesting level, so an interrupt that waits on another
 *      lock does not overwrite it),
 *   2. sets PV_SLOWPATH_FLAG in tail (atomic OR), announcing "a waiter may be
 *      asleep: unlock must kick",
 *   3. re-checks head, and if it is still not its turn,
 *   4. halts with arch_halt_if(&lock->val, value seen in 3): no sleep if the
 *      word has changed since (kernel: irq-off check + "sti; hlt";
 *      host: futex on a per-CPU kick word).
 * After any wake-up it re-checks, and halts again if needed.
 * Unlock adds 2 to head; then, if the flag is set, it finds the CPU
 * registered for the new head and kicks it (arch_kick_cpu).  If instead the
 * lock is now idle (head == tail, nobody holds a ticket) the flag is cleared
 * with a compare-and-swap, which fails harmlessly if a ticket was taken
 * meanwhile; no ticket holder can exist when it succeeds, so no sleeper is
 * forgotten.
 *
 * No lost wake-up.  All slow path accesses are sequentially consistent.  Let
 * W be a waiter for ticket t and U the unlock that makes head = t.  W does
 * (a) store slot, (b) set the flag or load it already set, (c) load head
 * (the value returned by (b)); U does (d) add to head,
 * (e) load flag, (f) load slots, (g) kick.  If (d) precedes (c), W sees its
 * turn and does not sleep.  Otherwise (c) precedes (d), so (a) and (b)
 * precede (e) and (f): U sees W's slot, and the flag, which only an unlock
 * finding no ticket outstanding may clear, and W holds one; U kicks W.  The kick
 * happens after (d); if it comes before W's halt re-check, the re-check sees
 * the changed word and W does not sleep; if after, it wakes the sleep (a
 * pending IPI ends "sti; hlt", a bumped kick word fails or ends FUTEX_WAIT).
 * A stale slot (a waiter that already moved on) at worst causes a spurious
 * kick, and every wake-up re-checks head.
 *
 * Memory ordering of the lock itself is the ticket lock's: acquire on the
 * ticket fetch-add and on head loads, release (here seq_cst) on the head add.
 * Unlock reads the flag after releasing the lock, so the lock must stay in
 * memory until every pv_unlock() on it has returned.
 *
 * Fairness: FIFO, like the ticket lock; a sleeping next waiter is woken
 * directly instead of being waited for by everyone behind it.
 *
 * A preempted holder.  When the host has taken the holder's vCPU off its
 * CPU (arch_vcpu_is_preempted: KVM's steal-time flag), the lock cannot be
 * released until the host runs that vCPU again, and spinning the threshold
 * out only keeps a host CPU from it.  So the waiter looks at the holder
 * every PV_PREEMPT_CHECK_SPINS spins and, finding it preempted, goes to the
 * halt path at once (the idea of Linux's pv_wait_early for qspinlock).
 * `holder` is a hint, written by each acquirer with a relaxed store after it
 * has the lock: a waiter may read the previous holder's CPU for a moment.
 * That can only make it halt early or spin on, both of which the protocol
 * above already allows; it never decides who owns the lock.
 */
#include "pvticket.h"
#include "registry.h"

#define PV_FLAG_WORD ((uint32_t)PV_SLOWPATH_FLAG << 16)

struct pv_slot {
	struct pv_lock *lock;
	uint32_t want;
};

static struct pv_cpu {
	struct pv_slot slot[LOCK_MAX_NESTING];
	unsigned int depth;
} __lock_aligned pv_cpu[LOCK_MAX_CPUS];

static struct pv_stats pv_stats;
unsigned int pv_spin_threshold = PV_SPIN_THRESHOLD;
bool pv_halt_on_preempted = true;

static inline uint16_t ticket_of(uint32_t val)
{
	return (uint16_t)(val >> 16) & ~PV_SLOWPATH_FLAG;
}

static void stat_inc(uint64_t *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

static inline void set_holder(struct pv_lock *l)
{
	__atomic_store_n(&l->holder, arch_cpu_id(), __ATOMIC_RELAXED);
}

/* Spinning cannot help: the holder's vCPU is not running. */
static inline bool holder_preempted(const struct pv_lock *l, unsigned int n)
{
	return (n & (PV_PREEMPT_CHECK_SPINS - 1)) == 0 && pv_halt_on_preempted &&
	       arch_vcpu_is_preempted(__atomic_load_n(&l->holder, __ATOMIC_RELAXED));
}

void pv_lock_init(struct pv_lock *l)
{
	*l = (struct pv_lock)PV_LOCK_INIT(NULL);
}

/* Steps 1-4 above; returns once head == me. */
static void pv_wait(struct pv_lock *l, uint16_t me, struct lock_wait *w)
{
	int cpu = arch_cpu_id();
	struct pv_cpu *c;
	struct pv_slot *s;
	unsigned int d;
	uint32_t v;

	if (cpu < 0 || cpu >= LOCK_MAX_CPUS)
		lock_panic("pv_lock: CPU#%d beyond LOCK_MAX_CPUS (%d)", cpu, LOCK_MAX_CPUS);
	c = &pv_cpu[cpu];
	d = c->depth++;
	if (d >= LOCK_MAX_NESTING)
		lock_panic("pv_lock: nesting deeper than %d on CPU#%d", LOCK_MAX_NESTING, cpu);
	s = &c->slot[d];
	stat_inc(&pv_stats.slowpath);
	__atomic_store_n(&s->want, me, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->lock, l, __ATOMIC_SEQ_CST);
	for (;;) {
		v = __atomic_load_n(&l->val, __ATOMIC_SEQ_CST);
		if (!(v & PV_FLAG_WORD))
			v = __atomic_or_fetch(&l->val, PV_FLAG_WORD, __ATOMIC_SEQ_CST);
		if ((uint16_t)v == me)
			break;
		stat_inc(&pv_stats.halts);
		arch_halt_if(&l->val, v);
		lock_wait_poll(w, LOCK_META(l), l);
	}
	__atomic_store_n(&s->lock, NULL, __ATOMIC_RELAXED);
	c->depth = d;
}

void pv_lock(struct pv_lock *l)
{
	uint32_t old;
	uint16_t me;
	struct lock_wait w;

	lock_debug_before(LOCK_META(l), l);
	old = __atomic_fetch_add(&l->val, PV_TICKET_INC << 16, __ATOMIC_ACQUIRE);
	me = ticket_of(old);
	if (lock_likely((uint16_t)old == me)) {
		set_holder(l);
		lock_acquired(LOCK_META(l), NULL);
		return;
	}
	lock_wait_begin(&w);
	for (;;) {
		for (unsigned int n = pv_spin_threshold; n; n--) {
			if (__atomic_load_n(&l->head, __ATOMIC_ACQUIRE) == me)
				goto out;
			if (holder_preempted(l, n)) {
				stat_inc(&pv_stats.preempted);
				break;
			}
			cpu_relax();
			lock_wait_spin(&w, LOCK_META(l), l);
		}
		pv_wait(l, me, &w);
		if (__atomic_load_n(&l->head, __ATOMIC_ACQUIRE) == me)
			break;
	}
out:
	set_holder(l);
	lock_acquired(LOCK_META(l), &w);
}

bool pv_trylock(struct pv_lock *l)
{
	uint32_t old = __atomic_load_n(&l->val, __ATOMIC_RELAXED);

	if ((uint16_t)old != ticket_of(old))
		return false;
	if (!__atomic_compare_exchange_n(&l->val, &old, old + (PV_TICKET_INC << 16), false,
	                                 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return false;
	set_holder(l);
	lock_acquired(LOCK_META(l), NULL);
	return true;
}

static void pv_unlock_slowpath(struct pv_lock *l, uint16_t next)
{
	uint32_t idle = (uint32_t)next | ((uint32_t)next << 16);
	uint32_t expect = idle | PV_FLAG_WORD;
	int ncpus = arch_num_cpus();

	if (__atomic_compare_exchange_n(&l->val, &expect, idle, false, __ATOMIC_SEQ_CST,
	                                __ATOMIC_SEQ_CST)) {
		stat_inc(&pv_stats.flag_clears);
		return;
	}
	if (ncpus > LOCK_MAX_CPUS)
		ncpus = LOCK_MAX_CPUS;
	for (int cpu = 0; cpu < ncpus; cpu++) {
		for (int d = 0; d < LOCK_MAX_NESTING; d++) {
			struct pv_slot *s = &pv_cpu[cpu].slot[d];

			if (__atomic_load_n(&s->lock, __ATOMIC_SEQ_CST) == l &&
			    __atomic_load_n(&s->want, __ATOMIC_SEQ_CST) == next) {
				stat_inc(&pv_stats.kicks);
				arch_kick_cpu(cpu);
				return;
			}
		}
	}
}

void pv_unlock(struct pv_lock *l)
{
	uint16_t next;

	lock_released(LOCK_META(l), l);
	next = __atomic_add_fetch(&l->head, (uint16_t)PV_TICKET_INC, __ATOMIC_SEQ_CST);
	if (lock_unlikely(__atomic_load_n(&l->val, __ATOMIC_SEQ_CST) & PV_FLAG_WORD))
		pv_unlock_slowpath(l, next);
}

bool pv_is_locked(const struct pv_lock *l)
{
	uint32_t v = __atomic_load_n(&l->val, __ATOMIC_RELAXED);

	return (uint16_t)v != ticket_of(v);
}

bool pv_is_contended(const struct pv_lock *l)
{
	uint32_t v = __atomic_load_n(&l->val, __ATOMIC_RELAXED);

	return (uint16_t)(ticket_of(v) - (uint16_t)v) > PV_TICKET_INC;
}

void pv_stats_get(struct pv_stats *out)
{
	out->slowpath = __atomic_load_n(&pv_stats.slowpath, __ATOMIC_RELAXED);
	out->halts = __atomic_load_n(&pv_stats.halts, __ATOMIC_RELAXED);
	out->kicks = __atomic_load_n(&pv_stats.kicks, __ATOMIC_RELAXED);
	out->flag_clears = __atomic_load_n(&pv_stats.flag_clears, __ATOMIC_RELAXED);
	out->preempted = __atomic_load_n(&pv_stats.preempted, __ATOMIC_RELAXED);
}

void pv_stats_reset(void)
{
	__atomic_store_n(&pv_stats.slowpath, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pv_stats.halts, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pv_stats.kicks, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pv_stats.flag_clears, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pv_stats.preempted, 0, __ATOMIC_RELAXED);
}

/* ---- The registry descriptor (registry.h): what every suite tests and measures. */

static void pv_type_init(void *l, const char *name)
{
	struct pv_lock *lk = l;

	pv_lock_init(lk);
	lock_set_name(lk, name);
}
static void pv_type_lock(void *l)
{
	pv_lock(l);
}
static void pv_type_unlock(void *l)
{
	pv_unlock(l);
}
static bool pv_type_trylock(void *l)
{
	return pv_trylock(l);
}
static bool pv_type_is_locked(const void *l)
{
	return pv_is_locked(l);
}
static bool pv_type_is_contended(const void *l)
{
	return pv_is_contended(l);
}

/* CPUs holding or waiting: (tail - head) / 2, the flag masked off. */
static int pv_type_queue_len(const void *l)
{
	uint32_t v = __atomic_load_n(&((const struct pv_lock *)l)->val, __ATOMIC_RELAXED);

	return (uint16_t)((uint16_t)(v >> 16 & ~PV_SLOWPATH_FLAG) - (uint16_t)v) / PV_TICKET_INC;
}
static unsigned pv_type_spin_threshold(unsigned spins)
{
	unsigned old = pv_spin_threshold;

	pv_spin_threshold = spins;
	return old;
}

static void pv_type_counts(uint64_t *halts, uint64_t *kicks)
{
	struct pv_stats st;

	pv_stats_get(&st);
	*halts = st.halts;
	*kicks = st.kicks;
}

static const struct lock_type pv_type = {
    .name = "pvticket",
    .origin = "Fitzhardinge, Raghavendra K T: Linux 3.12 \"x86, ticketlock: Add slowpath logic\"",
    .props = LOCK_PROP_FIFO | LOCK_PROP_PV | LOCK_PROP_IRQ_SAFE,
    .max_nesting = 0,
    .size = sizeof(struct pv_lock),
    .init = pv_type_init,
    .lock = pv_type_lock,
    .unlock = pv_type_unlock,
    .trylock = pv_type_trylock,
    .is_locked = pv_type_is_locked,
    .is_contended = pv_type_is_contended,
    .queue_len = pv_type_queue_len,
    .pv_of = "ticket",
    .spin_threshold = pv_type_spin_threshold,
    .pv_counts = pv_type_counts,
};
LOCK_TYPE_REGISTER(pv_type);
