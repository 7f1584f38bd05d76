/*
 * qspinlock.c - queued spinlock (Linux 4.2, Waiman Long and Peter Zijlstra,
 * after the MCS lock of Mellor-Crummey and Scott).
 *
 * The problem.  A ticket lock fits in 32 bits but all its waiters spin on
 * the lock's line, which every hand-over invalidates; an MCS lock spins
 * locally but its word is a pointer and every lock must carry a queue node
 * around.  The queued spinlock keeps the ticket lock's size and API and
 * queues its waiters MCS style on per-CPU nodes.
 *
 * The word (qspinlock.h): a locked byte, a pending bit, and a tail naming
 * the last queued node as (CPU number + 1, node index).  A CPU waits on at
 * most one lock per context it can be interrupted in (task, softirq,
 * hardirq, NMI), so LOCK_MAX_NESTING nodes per CPU are all the nodes there
 * are, and 16 bits of tail name any of them.
 *
 * Algorithm.
 *   Fast path: one compare-and-swap of the whole word, 0 -> locked.
 *   Pending: a second contender, finding the word with nothing but the
 *     locked byte set, sets the pending bit and spins on the word until
 *     the locked byte clears; then one 16-bit store clears pending and sets
 *     locked.  Two CPUs never touch a queue node.  A contender that sets
 *     pending and finds someone else pending or queued clears its bit again
 *     and queues.  A word of exactly "pending" is a hand-over in progress: a
 *     newcomer waits a bounded while for it to finish rather than queue.
 *   Queue: take this CPU's next node (node 0's count is the index; an
 *     interrupt that queues meanwhile takes the next one and gives it back
 *     before we resume), set next = NULL and locked = 0, then exchange our
 *     tail into the word's tail half.  A non-empty old tail names our
 *     predecessor: link ourselves as its next and spin on our own node's
 *     locked flag.  Then (or at once, with no predecessor) we are the queue
 *     head: spin on the word until locked and pending are both clear.  If
 *     the tail is still ours nobody queued behind us: a compare-and-swap of
 *     the word to plain "locked" takes the lock and empties the queue.
 *     Otherwise store the locked byte, wait for our successor to link
 *     itself, and set its node's locked flag: it is the head now.  Our node
 *     is free once we hold the lock.
 *   Unlock: a release store of 0 to the locked byte.
 *   With more nesting than nodes (not possible in this kernel, counted in
 *   ->overflow), the CPU spins on trylock instead of queueing.
 *
 * Memory ordering.  The lock is handed over through the word alone: the
 * unlock's release store of the locked byte pairs with the acquire of
 * whoever next finds it clear - the fast path's compare-and-swap, the
 * pending owner's load of the locked byte, or the queue head's load of the
 * word - so one critical section happens before the next.  The queue has
 * its own pairs.  Exchanging the tail is acq_rel: release publishes our
 * node's initialisation before anybody can find the node through the tail
 * (why the node must be initialised first: broken qspinlock_broken.c), and
 * acquire makes the predecessor's initialisation visible before we write
 * its next.  Linking (release store of prev->next) pairs with the head's
 * acquire load of next; passing the head on (release store of
 * next->locked) pairs with the successor's acquire spin on it.  Pending is
 * taken with an acquire fetch-or so that its owner's view of the word is
 * no older than the locked byte it then waits on.
 *
 * Why the plain stores are safe.  Only the holder writes the locked byte
 * to 0.  Only a CPU that owns the pending bit, or the queue head after it
 * has seen locked and pending clear, sets it: a contender seeing pending
 * or a tail queues, the queue head waits for pending to clear, and while
 * a queue exists nobody new becomes pending (the tail stays non-zero until
 * the last head empties it with a compare-and-swap).  So at any moment at
 * most one CPU may store the locked byte.
 *
 * Fairness: FIFO in the order contenders reach the word.  The fast path
 * and the pending bit are open only while nobody is queued (a tail in the
 * word sends every newcomer to the queue, and trylock needs the word 0), so
 * the pending CPU is simply the second in line and nobody overtakes the
 * queue.  The word cannot say how many CPUs queue (the tail names only the
 * last), so the type has no queue_len: the suites report its fairness.
 */
#include "qspinlock.h"
#include "registry.h"

/* How long a newcomer waits for a pending -> locked hand-over before queueing. */
#define QSPIN_PENDING_LOOPS 256
/*
 * The broken variant's stand-in for an interrupt between seeing the lock
 * free and taking it, in pauses.  In the kernel, 0 to 127 of them, a
 * different number each time (qspin_broken_window): a fixed 128 was often
 * longer than the other head's whole critical section, so the late head
 * took the lock after it was gone and nothing overlapped (at 2 vCPUs on a
 * loaded host: 1 to 115 torture runs to a catch; with 0 to 127, the first
 * run in 17 of 21 boots, 7 at most; with 0 to 255, up to 106).  The host
 * build keeps 128: there the window works by reaching a yield
 * (arch_host.c's yield_every), which lets an oversubscribed thread in.
 */
#define QSPIN_BROKEN_WINDOW 128

static struct qspin_node qspin_nodes[LOCK_MAX_CPUS][LOCK_MAX_NESTING];
static struct qspin_node qspin_broken_nodes[LOCK_MAX_CPUS][LOCK_MAX_NESTING];

/* A window length: in the kernel, a per-CPU xorshift below QSPIN_BROKEN_WINDOW. */
#ifdef LOCKLAB_HOST
static unsigned qspin_broken_window(int cpu)
{
	(void)cpu;
	return QSPIN_BROKEN_WINDOW;
}
#else
static uint32_t qspin_broken_rng[LOCK_MAX_CPUS];

static unsigned qspin_broken_window(int cpu)
{
	uint32_t x = qspin_broken_rng[cpu] ? qspin_broken_rng[cpu] : 0x9e3779b9u + (uint32_t)cpu;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	qspin_broken_rng[cpu] = x;
	return x % QSPIN_BROKEN_WINDOW;
}
#endif

static struct qspin_stats qspin_stats;

static inline void stat_inc(uint64_t *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

void qspin_lock_init(struct qspinlock *l)
{
	*l = (struct qspinlock)QSPINLOCK_INIT(NULL);
}

static inline bool qspin_trylock_word(struct qspinlock *l)
{
	uint32_t v = __atomic_load_n(&l->val, __ATOMIC_RELAXED);

	return !v && __atomic_compare_exchange_n(&l->val, &v, QSPIN_LOCKED, false, __ATOMIC_ACQUIRE,
	                                         __ATOMIC_RELAXED);
}

/*
 * The slow path, compiled twice: correct, and with `broken` set for
 * qspinlock_broken.c (no pending bit, the node's locked flag never reset
 * before it is published, a window before the claim).  `broken` is a
 * constant in each copy, so the correct one carries none of it.
 */
static __attribute__((always_inline)) inline void
qspin_slowpath(struct qspinlock *l, uint32_t v, struct qspin_node (*nodes)[LOCK_MAX_NESTING],
               const bool broken)
{
	struct qspin_node *node, *next;
	struct lock_wait w;
	uint32_t tail, old;
	int cpu, idx;

	lock_wait_begin(&w);
	if (broken)
		goto queue;
	/* A pending owner is taking the lock: let it finish (bounded). */
	for (int n = QSPIN_PENDING_LOOPS; v == QSPIN_PENDING && n; n--) {
		cpu_relax();
		v = __atomic_load_n(&l->val, __ATOMIC_RELAXED);
	}
	if (!(v & ~QSPIN_LOCKED_MASK)) {
		v = __atomic_fetch_or(&l->val, QSPIN_PENDING, __ATOMIC_ACQUIRE);
		if (!(v & ~QSPIN_LOCKED_MASK)) {
			/* Pending is ours: wait for the holder, then take it in one store. */
			while (__atomic_load_n(&l->locked, __ATOMIC_ACQUIRE)) {
				cpu_relax();
				lock_wait_spin(&w, LOCK_META(l), l);
			}
			__atomic_store_n(&l->locked_pending, QSPIN_LOCKED, __ATOMIC_RELAXED);
			stat_inc(&qspin_stats.pending);
			lock_acquired(LOCK_META(l), &w);
			return;
		}
		/* Somebody is pending or queued: give back the bit if we set it. */
		if (!(v & QSPIN_PENDING))
			__atomic_fetch_and(&l->val, ~QSPIN_PENDING, __ATOMIC_RELAXED);
	}

queue:
	cpu = arch_cpu_id();
	if (cpu < 0 || cpu >= LOCK_MAX_CPUS)
		lock_panic("qspinlock: CPU#%d beyond LOCK_MAX_CPUS (%d)", cpu, LOCK_MAX_CPUS);
	/* Compiler ordering only: an interrupt is this CPU, in program order. */
	idx = (int)nodes[cpu][0].count++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (lock_unlikely(idx >= LOCK_MAX_NESTING)) {
		stat_inc(&qspin_stats.overflow);
		while (!qspin_trylock_word(l)) {
			cpu_relax();
			lock_wait_spin(&w, LOCK_META(l), l);
		}
		goto out;
	}
	node = &nodes[cpu][idx];
	if (!broken)
		__atomic_store_n(&node->locked, 0, __ATOMIC_RELAXED);
	/* WRONG ON PURPOSE when broken: node->locked may still be 1 from its last use. */
	__atomic_store_n(&node->next, NULL, __ATOMIC_RELAXED);
	if (!broken) {
		/* The lock may have come free while we took a node. */
		if (qspin_trylock_word(l))
			goto out;
		stat_inc(&qspin_stats.queued);
		if (idx)
			stat_inc(&qspin_stats.nested);
	}

	tail = qspin_encode_tail(cpu, idx);
	old = (uint32_t)__atomic_exchange_n(&l->tail, (uint16_t)(tail >> 16), __ATOMIC_ACQ_REL)
	      << 16;
	if (old) {
		struct qspin_node *prev = &nodes[qspin_tail_cpu(old)][qspin_tail_idx(old)];

		__atomic_store_n(&prev->next, node, __ATOMIC_RELEASE);
		while (!__atomic_load_n(&node->locked, __ATOMIC_ACQUIRE)) {
			cpu_relax();
			if (!broken)
				lock_wait_spin(&w, LOCK_META(l), l);
		}
		if (!broken)
			stat_inc(&qspin_stats.waited);
	}

	/* Queue head: wait for the holder and any pending CPU to go. */
	while ((v = __atomic_load_n(&l->val, __ATOMIC_ACQUIRE)) &
	       (QSPIN_LOCKED_MASK | QSPIN_PENDING)) {
		cpu_relax();
		if (!broken)
			lock_wait_spin(&w, LOCK_META(l), l);
	}
	if ((v & QSPIN_TAIL_MASK) == tail &&
	    __atomic_compare_exchange_n(&l->val, &v, QSPIN_LOCKED, false, __ATOMIC_ACQUIRE,
	                                __ATOMIC_RELAXED))
		goto out; /* we were the last in the queue: it is empty now */
	if (broken)
		for (unsigned i = qspin_broken_window(cpu); i; i--)
			cpu_relax();
	__atomic_store_n(&l->locked, QSPIN_LOCKED, __ATOMIC_RELAXED);
	while (!(next = __atomic_load_n(&node->next, __ATOMIC_ACQUIRE)))
		cpu_relax();
	__atomic_store_n(&next->locked, 1, __ATOMIC_RELEASE);
out:
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	nodes[cpu][0].count--;
	if (!broken)
		lock_acquired(LOCK_META(l), &w);
}

static __attribute__((noinline)) void qspin_lock_slow(struct qspinlock *l, uint32_t v)
{
	qspin_slowpath(l, v, qspin_nodes, false);
}

void qspin_lock(struct qspinlock *l)
{
	uint32_t v = 0;

	lock_debug_before(LOCK_META(l), l);
	if (lock_likely(__atomic_compare_exchange_n(&l->val, &v, QSPIN_LOCKED, false,
	                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))) {
		lock_acquired(LOCK_META(l), NULL);
		return;
	}
	qspin_lock_slow(l, v);
}

bool qspin_trylock(struct qspinlock *l)
{
	if (!qspin_trylock_word(l))
		return false;
	lock_acquired(LOCK_META(l), NULL);
	return true;
}

void qspin_unlock(struct qspinlock *l)
{
	lock_released(LOCK_META(l), l);
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

/* Held, or about to be (a pending or queued CPU owns the next turn). */
bool qspin_is_locked(const struct qspinlock *l)
{
	return __atomic_load_n(&l->val, __ATOMIC_RELAXED) != 0;
}

bool qspin_is_contended(const struct qspinlock *l)
{
	return (__atomic_load_n(&l->val, __ATOMIC_RELAXED) & ~QSPIN_LOCKED_MASK) != 0;
}

void qspin_stats_get(struct qspin_stats *out)
{
	out->pending = __atomic_load_n(&qspin_stats.pending, __ATOMIC_RELAXED);
	out->queued = __atomic_load_n(&qspin_stats.queued, __ATOMIC_RELAXED);
	out->waited = __atomic_load_n(&qspin_stats.waited, __ATOMIC_RELAXED);
	out->nested = __atomic_load_n(&qspin_stats.nested, __ATOMIC_RELAXED);
	out->overflow = __atomic_load_n(&qspin_stats.overflow, __ATOMIC_RELAXED);
}

void qspin_stats_reset(void)
{
	__atomic_store_n(&qspin_stats.pending, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&qspin_stats.queued, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&qspin_stats.waited, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&qspin_stats.nested, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&qspin_stats.overflow, 0, __ATOMIC_RELAXED);
}

/* ---- the deliberately broken copy (qspinlock_broken.c) ------------------ */

static __attribute__((noinline)) void qspin_broken_slow(struct qspinlock *l, uint32_t v)
{
	qspin_slowpath(l, v, qspin_broken_nodes, true);
}

void qspin_broken_lock(struct qspinlock *l)
{
	uint32_t v = 0;

	if (!__atomic_compare_exchange_n(&l->val, &v, QSPIN_LOCKED, false, __ATOMIC_ACQUIRE,
	                                 __ATOMIC_RELAXED))
		qspin_broken_slow(l, v);
}

void qspin_broken_unlock(struct qspinlock *l)
{
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

/* ---- registry ----------------------------------------------------------- */

static void qspin_type_init(void *l, const char *name)
{
	qspin_lock_init(l);
	lock_set_name((struct qspinlock *)l, name);
}
static void qspin_type_lock(void *l)
{
	qspin_lock(l);
}
static void qspin_type_unlock(void *l)
{
	qspin_unlock(l);
}
static bool qspin_type_trylock(void *l)
{
	return qspin_trylock(l);
}
static bool qspin_type_is_locked(const void *l)
{
	return qspin_is_locked(l);
}
static bool qspin_type_is_contended(const void *l)
{
	return qspin_is_contended(l);
}

static const struct lock_stat *qspin_type_stat(const void *l)
{
#ifdef LOCK_STAT
	return &((const struct qspinlock *)l)->meta.stat;
#else
	(void)l;
	return NULL;
#endif
}

static const struct lock_type qspin_type = {
    .name = "qspinlock",
    .origin = "Linux 4.2, a33fda35e3a7 \"locking/qspinlock: Introduce a simple generic 4-byte "
              "queued spinlock\" (Waiman Long, Peter Zijlstra, 2015)",
    .props = LOCK_PROP_FIFO | LOCK_PROP_PERCPU_NODE | LOCK_PROP_IRQ_SAFE,
    .max_nesting = 0,
    .size = sizeof(struct qspinlock),
    .init = qspin_type_init,
    .lock = qspin_type_lock,
    .unlock = qspin_type_unlock,
    .trylock = qspin_type_trylock,
    .is_locked = qspin_type_is_locked,
    .is_contended = qspin_type_is_contended,
    .stat = qspin_type_stat,
};
LOCK_TYPE_REGISTER(qspin_type);
