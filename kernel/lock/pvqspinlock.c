/*
 * pvqspinlock.c - paravirtual queued spinlock (Linux 4.2, Waiman Long;
 * the successor of the PV ticket lock in pvticket.c).
 *
 * The problem.  A queued lock hands the lock to the queue head and queue
 * headship to the next node: if the vCPU that must act next is not running,
 * everybody behind it spins for the rest of its time slice (pvticket.c).
 * Here both kinds of waiter give their CPU back after a while and are
 * kicked (arch_kick_cpu) by whoever makes progress possible for them.
 *
 * Algorithm.  The word and the fast path are qspinlock.c's, and so is the
 * pending bit.  The MCS queue changes in three places.
 *   Queued waiters.  A node's wait word is WAIT, HALTED or granted.  A
 *     waiter spins pvq_spin_threshold times for its grant (checking now and
 *     then whether its predecessor's vCPU is preempted: then it stops
 *     spinning at once), then moves its wait word WAIT -> HALTED with a
 *     compare-and-swap and halts until the word changes
 *     (arch_halt_if(&node->wait, HALTED)).  The predecessor grants headship
 *     with a compare-and-swap that also records what it saw: HALTED becomes
 *     GRANTED_KICK and the predecessor kicks the waiter's CPU; WAIT becomes
 *     GRANTED, no kick.  Grant and "is it asleep?" are one word, one atomic
 *     step on each side, so no wake-up can be lost between them.
 *   The queue head.  It spins pvq_spin_threshold times (at least once, so
 *     a threshold of 0 cannot keep it from seeing a free lock) for the lock
 *     word's locked and pending to clear.  Then, if the lock is plainly held, it
 *     enters (lock -> its node) in a hash table and turns the locked byte
 *     from LOCKED into PVQ_SLOW with a compare-and-swap of the word (only
 *     while it is held), and halts until the word changes.  Unlock is a
 *     compare-and-swap of the locked byte LOCKED -> 0: one atomic, as
 *     before, when nobody sleeps.  Finding PVQ_SLOW instead, the unlocker
 *     takes the head's entry out of the hash table, marks the node KICKED,
 *     releases the locked byte and kicks the head's CPU.
 *   Stealing.  While the head sleeps (or is being woken) the lock can be
 *     free with a queue behind it; a newcomer that finds it so takes it
 *     with one compare-and-swap that also counts the steal in bits 9-15 of
 *     the word.  The queue (head or pending CPU) clears the count when it
 *     takes the lock; at PVQ_STEAL_MAX newcomers queue, so the queue waits
 *     for at most PVQ_STEAL_MAX critical sections beyond the holder's.
 *
 * No lost kick.  A queued waiter: see above; the kick decision is read
 * from the same word that the waiter's halt re-checks.  The queue head:
 * (a) hash entry stored, (b) locked byte LOCKED -> SLOW, seq_cst, before it
 * halts on the word.  The unlocker's compare-and-swap fails only on SLOW,
 * i.e. after (b), so it finds the entry of (a); it marks the node KICKED
 * before it releases the locked byte (release) and kicks after.  The head's
 * halt re-checks the word (SLOW still there) with interrupts off ("sti;
 * hlt" ends at the kick's IPI; the host's futex at the kick word), so a
 * kick sent before it sleeps is not lost either.  Nothing but the slow
 * unlock moves the locked byte away from SLOW (stealers, the pending CPU
 * and the head all need it 0), which is what the audit relies on: a head
 * that sees the byte released (acquire) without its node marked KICKED
 * counts a lost kick, as does a waiter that halted and finds itself
 * granted without GRANTED_KICK.
 *
 * Memory ordering: qspinlock.c's for the word and the queue; the slow-path
 * hand-shakes above are seq_cst.  The unlocker reads the head's node and
 * the hash table only after its failed compare-and-swap (acquire) has read
 * SLOW, which the head stored (seq_cst) after its entry.
 *
 * Fairness: FIFO among the queued, with the pending CPU and at most
 * PVQ_STEAL_MAX stealers at a time going before them.
 */
#include "pvqspinlock.h"
#include "registry.h"

/* A queued waiter's wait word. */
#define W_WAIT 0u
#define W_HALTED 1u
#define W_GRANTED 2u      /* headship granted while it ran */
#define W_GRANTED_KICK 3u /* granted while it slept: the granter kicks it */
/* The queue head's. */
#define H_RUNNING 4u
#define H_HASHED 5u /* in the hash table, may be asleep */
#define H_KICKED 6u /* unlock took it out of the table and kicks it */

#define PVQ_PREEMPT_CHECK_EVERY 64 /* spins between looks at the predecessor's vCPU */
#define PVQ_PENDING_LOOPS 256

struct pvq_node {
	struct pvq_node *next;
	uint32_t wait;
	uint32_t count; /* node 0 only: this CPU's nodes in use */
	int cpu;
} __lock_aligned;

/* Sleeping queue heads, at most one per CPU and nesting level: twice that many slots. */
#define PVQ_HASH_SIZE (2 * LOCK_MAX_CPUS * LOCK_MAX_NESTING)

struct pvq_hash_entry {
	struct pvqspinlock *lock;
	struct pvq_node *node;
};

static struct pvq_node pvq_nodes[LOCK_MAX_CPUS][LOCK_MAX_NESTING];
static struct pvq_hash_entry pvq_hash[PVQ_HASH_SIZE];
static struct pvq_stats pvq_stats;
unsigned int pvq_spin_threshold = PVQ_SPIN_THRESHOLD;
bool pvq_lose_kicks;

static inline void stat_inc(uint64_t *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

void pvq_lock_init(struct pvqspinlock *l)
{
	*l = (struct pvqspinlock)PVQSPINLOCK_INIT(NULL);
}

/* ---- the hash table: lock -> sleeping queue head ------------------------ */

static unsigned int pvq_hash_of(const struct pvqspinlock *l)
{
	uint64_t h = ((uintptr_t)l >> 6) * 0x9e3779b97f4a7c15ull;

	return (unsigned int)(h >> 40) % PVQ_HASH_SIZE;
}

static struct pvq_hash_entry *pvq_hash_add(struct pvqspinlock *l, struct pvq_node *node)
{
	unsigned int h = pvq_hash_of(l);

	for (unsigned int i = 0; i < PVQ_HASH_SIZE; i++) {
		struct pvq_hash_entry *e = &pvq_hash[(h + i) % PVQ_HASH_SIZE];
		struct pvqspinlock *none = NULL;

		if (__atomic_load_n(&e->lock, __ATOMIC_RELAXED) == NULL &&
		    __atomic_compare_exchange_n(&e->lock, &none, l, false, __ATOMIC_SEQ_CST,
		                                __ATOMIC_RELAXED)) {
			__atomic_store_n(&e->node, node, __ATOMIC_SEQ_CST);
			return e;
		}
	}
	lock_panic("pvqspinlock: hash table full (%d entries)", PVQ_HASH_SIZE);
}

static void pvq_hash_del(struct pvq_hash_entry *e)
{
	__atomic_store_n(&e->node, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&e->lock, NULL, __ATOMIC_RELEASE);
}

/* Unlock's side: the entry of the head sleeping on @l (there must be one). */
static struct pvq_hash_entry *pvq_hash_find(struct pvqspinlock *l)
{
	unsigned int h = pvq_hash_of(l);

	for (unsigned int i = 0; i < PVQ_HASH_SIZE; i++) {
		struct pvq_hash_entry *e = &pvq_hash[(h + i) % PVQ_HASH_SIZE];

		if (__atomic_load_n(&e->lock, __ATOMIC_ACQUIRE) == l)
			return e;
	}
	lock_panic("pvqspinlock %p: locked byte SLOW but no sleeping head in the hash table",
	           (void *)l);
}

/* ---- queued waiter ------------------------------------------------------ */

/* Returns once @node has been made queue head. */
static void pvq_wait_node(struct pvqspinlock *l, struct pvq_node *node, int prev_cpu,
                          struct lock_wait *w)
{
	uint32_t s = W_WAIT;

	for (unsigned int n = 1; n <= pvq_spin_threshold; n++) {
		if (__atomic_load_n(&node->wait, __ATOMIC_ACQUIRE) != W_WAIT)
			return;
		if (n % PVQ_PREEMPT_CHECK_EVERY == 0 && arch_vcpu_is_preempted(prev_cpu)) {
			stat_inc(&pvq_stats.preempted);
			break;
		}
		cpu_relax();
		lock_wait_spin(w, LOCK_META(&l->q), l);
	}
	if (!__atomic_compare_exchange_n(&node->wait, &s, W_HALTED, false, __ATOMIC_SEQ_CST,
	                                 __ATOMIC_ACQUIRE))
		return; /* granted meanwhile */
	stat_inc(&pvq_stats.halts_queue);
	while ((s = __atomic_load_n(&node->wait, __ATOMIC_ACQUIRE)) == W_HALTED) {
		arch_halt_if(&node->wait, W_HALTED);
		lock_wait_poll(w, LOCK_META(&l->q), l);
	}
	if (s != W_GRANTED_KICK)
		stat_inc(&pvq_stats.lost_kicks);
}

/* Make @next queue head, kicking it if it sleeps. */
static void pvq_grant(struct pvq_node *next)
{
	int cpu = next->cpu;
	uint32_t old = __atomic_load_n(&next->wait, __ATOMIC_RELAXED), new;

	do
		new = old == W_HALTED ? W_GRANTED_KICK : W_GRANTED;
	while (!__atomic_compare_exchange_n(&next->wait, &old, new, false, __ATOMIC_SEQ_CST,
	                                    __ATOMIC_RELAXED));
	if (new == W_GRANTED_KICK) {
		stat_inc(&pvq_stats.kicks_queue);
		arch_kick_cpu(cpu);
	}
}

/* ---- queue head --------------------------------------------------------- */

/* Took the lock word from @v (locked and pending clear); false: @v changed. */
static bool pvq_head_claim(struct pvqspinlock *l, uint32_t v, uint32_t tail)
{
	/* Last in the queue: empty it.  Else keep the tail; the steal count restarts. */
	uint32_t want =
	    (v & QSPIN_TAIL_MASK) == tail ? QSPIN_LOCKED : (v & QSPIN_TAIL_MASK) | QSPIN_LOCKED;

	return __atomic_compare_exchange_n(&l->q.val, &v, want, false, __ATOMIC_ACQUIRE,
	                                   __ATOMIC_RELAXED);
}

/* Sleep until unlock kicks us; false if the lock was not plainly held (spin instead). */
static bool pvq_head_halt(struct pvqspinlock *l, struct pvq_node *node, uint32_t v,
                          struct lock_wait *w)
{
	struct pvq_hash_entry *e;

	if ((v & QSPIN_LOCKED_MASK) != QSPIN_LOCKED)
		return false;
	__atomic_store_n(&node->wait, H_HASHED, __ATOMIC_SEQ_CST);
	e = pvq_hash_add(l, node);
	for (;;) {
		uint32_t slow = (v & ~QSPIN_LOCKED_MASK) | PVQ_SLOW;

		if (__atomic_compare_exchange_n(&l->q.val, &v, slow, false, __ATOMIC_SEQ_CST,
		                                __ATOMIC_RELAXED))
			break;
		if ((v & QSPIN_LOCKED_MASK) != QSPIN_LOCKED) {
			/* Released meanwhile: nobody has seen SLOW, take the entry back. */
			pvq_hash_del(e);
			__atomic_store_n(&node->wait, H_RUNNING, __ATOMIC_RELAXED);
			return false;
		}
	}
	stat_inc(&pvq_stats.halts_head);
	for (;;) {
		v = __atomic_load_n(&l->q.val, __ATOMIC_ACQUIRE);
		if ((v & QSPIN_LOCKED_MASK) != PVQ_SLOW)
			break;
		arch_halt_if(&l->q.val, v);
		lock_wait_poll(w, LOCK_META(&l->q), l);
	}
	/* The byte left SLOW: only a slow unlock does that, after marking us. */
	if (__atomic_load_n(&node->wait, __ATOMIC_ACQUIRE) != H_KICKED) {
		stat_inc(&pvq_stats.lost_kicks);
		pvq_hash_del(e);
	}
	__atomic_store_n(&node->wait, H_RUNNING, __ATOMIC_RELAXED);
	return true;
}

/* Returns holding the lock: true if the queue is empty now, false if a successor follows. */
static bool pvq_wait_head(struct pvqspinlock *l, struct pvq_node *node, uint32_t tail,
                          struct lock_wait *w)
{
	uint32_t v = __atomic_load_n(&l->q.val, __ATOMIC_RELAXED);

	__atomic_store_n(&node->wait, H_RUNNING, __ATOMIC_RELAXED);
	for (;;) {
		/*
		 * At least one look at the word per round, whatever the threshold:
		 * pvq_head_halt() declines when the lock is not plainly held, and
		 * without a fresh look the head would offer it the same stale `v`
		 * for ever and never claim a free lock.
		 */
		for (unsigned int n = pvq_spin_threshold ? pvq_spin_threshold : 1; n; n--) {
			v = __atomic_load_n(&l->q.val, __ATOMIC_ACQUIRE);
			if (!(v & (QSPIN_LOCKED_MASK | QSPIN_PENDING))) {
				if (pvq_head_claim(l, v, tail))
					return (v & QSPIN_TAIL_MASK) == tail;
				continue;
			}
			cpu_relax();
			lock_wait_spin(w, LOCK_META(&l->q), l);
		}
		pvq_head_halt(l, node, v, w);
	}
}

/* ---- lock and unlock ---------------------------------------------------- */

static bool pvq_trylock_word(struct pvqspinlock *l)
{
	uint32_t v = __atomic_load_n(&l->q.val, __ATOMIC_RELAXED);

	return !v && __atomic_compare_exchange_n(&l->q.val, &v, QSPIN_LOCKED, false,
	                                         __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

/* A newcomer takes a lock that is free with a queue behind it (bounded by the count). */
static bool pvq_steal(struct pvqspinlock *l, uint32_t v)
{
	if (!(v & QSPIN_TAIL_MASK) || (v & (QSPIN_LOCKED_MASK | QSPIN_PENDING)) ||
	    (v & PVQ_STEAL_MASK) >= PVQ_STEAL_MAX * PVQ_STEAL_ONE)
		return false;
	if (!__atomic_compare_exchange_n(&l->q.val, &v, v + PVQ_STEAL_ONE + QSPIN_LOCKED, false,
	                                 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return false;
	stat_inc(&pvq_stats.steals);
	return true;
}

static __attribute__((noinline)) void pvq_lock_slow(struct pvqspinlock *l, uint32_t v)
{
	struct pvq_node *node, *next;
	struct lock_wait w;
	uint32_t tail, old;
	int cpu, idx;

	lock_wait_begin(&w);
	/* The pending bit, as in qspinlock.c: the pending CPU only spins. */
	for (int n = PVQ_PENDING_LOOPS; v == QSPIN_PENDING && n; n--) {
		cpu_relax();
		v = __atomic_load_n(&l->q.val, __ATOMIC_RELAXED);
	}
	if (!(v & ~QSPIN_LOCKED_MASK)) {
		v = __atomic_fetch_or(&l->q.val, QSPIN_PENDING, __ATOMIC_ACQUIRE);
		if (!(v & ~QSPIN_LOCKED_MASK)) {
			while (__atomic_load_n(&l->q.locked, __ATOMIC_ACQUIRE)) {
				cpu_relax();
				lock_wait_spin(&w, LOCK_META(&l->q), l);
			}
			/* Clears pending and the steal count, sets locked. */
			__atomic_store_n(&l->q.locked_pending, QSPIN_LOCKED, __ATOMIC_RELAXED);
			goto acquired;
		}
		if (!(v & QSPIN_PENDING))
			v = __atomic_and_fetch(&l->q.val, ~QSPIN_PENDING, __ATOMIC_RELAXED);
	}
	if (pvq_steal(l, v))
		goto acquired;

	cpu = arch_cpu_id();
	if (cpu < 0 || cpu >= LOCK_MAX_CPUS)
		lock_panic("pvqspinlock: CPU#%d beyond LOCK_MAX_CPUS (%d)", cpu, LOCK_MAX_CPUS);
	idx = (int)pvq_nodes[cpu][0].count++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (lock_unlikely(idx >= LOCK_MAX_NESTING)) {
		while (!pvq_trylock_word(l)) {
			cpu_relax();
			lock_wait_spin(&w, LOCK_META(&l->q), l);
		}
		goto release;
	}
	node = &pvq_nodes[cpu][idx];
	node->cpu = cpu;
	__atomic_store_n(&node->wait, W_WAIT, __ATOMIC_RELAXED);
	__atomic_store_n(&node->next, NULL, __ATOMIC_RELAXED);
	if (pvq_trylock_word(l))
		goto release;
	stat_inc(&pvq_stats.queued);

	tail = qspin_encode_tail(cpu, idx);
	old = (uint32_t)__atomic_exchange_n(&l->q.tail, (uint16_t)(tail >> 16), __ATOMIC_ACQ_REL)
	      << 16;
	if (old) {
		struct pvq_node *prev = &pvq_nodes[qspin_tail_cpu(old)][qspin_tail_idx(old)];

		__atomic_store_n(&prev->next, node, __ATOMIC_RELEASE);
		pvq_wait_node(l, node, qspin_tail_cpu(old), &w);
	}
	if (!pvq_wait_head(l, node, tail, &w)) {
		/* We hold the lock; the CPU that queued behind us is the head now. */
		while (!(next = __atomic_load_n(&node->next, __ATOMIC_ACQUIRE)))
			cpu_relax();
		pvq_grant(next);
	}
release:
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pvq_nodes[cpu][0].count--;
acquired:
	lock_acquired(LOCK_META(&l->q), &w);
}

void pvq_lock(struct pvqspinlock *l)
{
	uint32_t v = 0;

	lock_debug_before(LOCK_META(&l->q), l);
	if (lock_likely(__atomic_compare_exchange_n(&l->q.val, &v, QSPIN_LOCKED, false,
	                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))) {
		lock_acquired(LOCK_META(&l->q), NULL);
		return;
	}
	pvq_lock_slow(l, v);
}

bool pvq_trylock(struct pvqspinlock *l)
{
	if (!pvq_trylock_word(l))
		return false;
	lock_acquired(LOCK_META(&l->q), NULL);
	return true;
}

static __attribute__((noinline)) void pvq_unlock_slow(struct pvqspinlock *l, uint8_t byte)
{
	struct pvq_hash_entry *e;
	struct pvq_node *node;
	int cpu;

	if (byte != PVQ_SLOW)
		lock_panic("pvqspinlock %p: unlock with locked byte %u", (void *)l, byte);
	if (lock_unlikely(__atomic_load_n(&pvq_lose_kicks, __ATOMIC_RELAXED))) {
		/* WRONG ON PURPOSE (tests): the sleeping head is neither found nor kicked. */
		__atomic_store_n(&l->q.locked, 0, __ATOMIC_RELEASE);
		return;
	}
	e = pvq_hash_find(l);
	node = __atomic_load_n(&e->node, __ATOMIC_ACQUIRE);
	if (!node)
		lock_panic("pvqspinlock %p: hash entry without its node", (void *)l);
	cpu = node->cpu;
	pvq_hash_del(e);
	__atomic_store_n(&node->wait, H_KICKED, __ATOMIC_SEQ_CST);
	__atomic_store_n(&l->q.locked, 0, __ATOMIC_RELEASE);
	stat_inc(&pvq_stats.kicks_head);
	arch_kick_cpu(cpu);
}

void pvq_unlock(struct pvqspinlock *l)
{
	uint8_t byte = QSPIN_LOCKED;

	lock_released(LOCK_META(&l->q), l);
	if (lock_likely(__atomic_compare_exchange_n(&l->q.locked, &byte, 0, false, __ATOMIC_ACQ_REL,
	                                            __ATOMIC_ACQUIRE)))
		return;
	pvq_unlock_slow(l, byte);
}

bool pvq_is_locked(const struct pvqspinlock *l)
{
	return __atomic_load_n(&l->q.val, __ATOMIC_RELAXED) != 0;
}

bool pvq_is_contended(const struct pvqspinlock *l)
{
	return (__atomic_load_n(&l->q.val, __ATOMIC_RELAXED) & (QSPIN_PENDING | QSPIN_TAIL_MASK)) !=
	       0;
}

void pvq_stats_get(struct pvq_stats *out)
{
	uint64_t *src = (uint64_t *)&pvq_stats, *dst = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void pvq_stats_reset(void)
{
	uint64_t *c = (uint64_t *)&pvq_stats;

	for (size_t i = 0; i < sizeof(pvq_stats) / sizeof(uint64_t); i++)
		__atomic_store_n(&c[i], 0, __ATOMIC_RELAXED);
}

/* ---- registry ----------------------------------------------------------- */

static void pvq_type_init(void *l, const char *name)
{
	pvq_lock_init(l);
	lock_set_name(&((struct pvqspinlock *)l)->q, name);
}
static void pvq_type_lock(void *l)
{
	pvq_lock(l);
}
static void pvq_type_unlock(void *l)
{
	pvq_unlock(l);
}
static bool pvq_type_trylock(void *l)
{
	return pvq_trylock(l);
}
static bool pvq_type_is_locked(const void *l)
{
	return pvq_is_locked(l);
}
static bool pvq_type_is_contended(const void *l)
{
	return pvq_is_contended(l);
}

static unsigned pvq_type_spin_threshold(unsigned spins)
{
	unsigned old = pvq_spin_threshold;

	/* 0 would mean "halt before looking"; the head looks once anyway (pvq_wait_head). */
	pvq_spin_threshold = spins ? spins : 1;
	return old;
}
static void pvq_type_counts(uint64_t *halts, uint64_t *kicks)
{
	struct pvq_stats s;

	pvq_stats_get(&s);
	*halts = s.halts_queue + s.halts_head;
	*kicks = s.kicks_queue + s.kicks_head;
}
static const struct lock_stat *pvq_type_stat(const void *l)
{
#ifdef LOCK_STAT
	return &((const struct pvqspinlock *)l)->q.meta.stat;
#else
	(void)l;
	return NULL;
#endif
}

static const struct lock_type pvq_type = {
    .name = "pvqspinlock",
    .origin = "Linux 4.2, a23db284fe0d \"locking/pvqspinlock: Implement simple paravirt "
              "support for the qspinlock\" (Waiman Long, 2015)",
    .props = LOCK_PROP_PV | LOCK_PROP_PERCPU_NODE | LOCK_PROP_IRQ_SAFE,
    .max_nesting = 0,
    .size = sizeof(struct pvqspinlock),
    .init = pvq_type_init,
    .lock = pvq_type_lock,
    .unlock = pvq_type_unlock,
    .trylock = pvq_type_trylock,
    .is_locked = pvq_type_is_locked,
    .is_contended = pvq_type_is_contended,
    .pv_of = "qspinlock",
    .spin_threshold = pvq_type_spin_threshold,
    .stat = pvq_type_stat,
    .pv_counts = pvq_type_counts,
};
LOCK_TYPE_REGISTER(pvq_type);
