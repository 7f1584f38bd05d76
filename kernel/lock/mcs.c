/*
 * mcs.c - MCS queue lock (Mellor-Crummey and Scott, 1991).
 *
 * Algorithm.  Waiters form a linked queue of nodes; the lock word is a
 * pointer to the last node.  To acquire, a CPU initialises its node (next =
 * NULL, locked = 0) and atomically exchanges the node into tail.  An old tail
 * of NULL means the lock was free and is now ours.  Otherwise it links itself
 * behind the old tail (pred->next = node) and spins on its own node's
 * locked flag.  To release, the holder looks at node->next: with a successor
 * it sets successor->locked = 1 and is done.  With none yet, it tries to
 * swing tail from its node back to NULL (compare-and-swap); if that fails, a
 * CPU has exchanged itself into tail but not yet linked itself, so the holder
 * waits for node->next to appear and then passes the lock on.
 *
 * Why: every waiter spins on a cache line of its own (nodes are
 * cache-line aligned), so a release invalidates one waiter's line instead of
 * every waiter's, and the traffic per hand-over is constant, whatever the
 * number of waiters.
 *
 * Memory ordering.  The tail exchange is acq_rel: release publishes the
 * node's initialisation before anyone can find the node through tail;
 * acquire makes the old tail's node (written before its own exchange)
 * visible to us before we write pred->next.  The hand-over is a release
 * store of successor->locked paired with the successor's acquire load of
 * it; the failed-free path's compare-and-swap is a release so that, when it
 * succeeds, the next CPU to exchange tail (acquire) sees our critical
 * section.  next is published with a release store and read with acquire.
 *
 * Nodes.  mcs_lock(l, node) takes a caller's node, which must stay valid
 * until mcs_unlock(l, node).  mcs_spin_lock(l) uses this CPU's array of
 * LOCK_MAX_NESTING nodes, one per lock held or awaited at once (task,
 * softirq, hardirq, NMI nesting, or locks nested in task context).  A free
 * node is claimed by a plain read of its owner and a store, with interrupts
 * left as they are: an interrupt or NMI that arrives between the two may
 * claim the same node, but it releases every lock it took before it
 * returns, so the node is free again when we store.  Only this CPU touches
 * its nodes' owner fields, and the caller keeps us on this CPU (preemption
 * off).  Releases may come in any order, each one searching this CPU's nodes
 * for the one tagged with its lock.
 *
 * Fairness: FIFO in the order of the tail exchange.
 */
#include "mcs.h"
#include "registry.h"

static struct mcs_node mcs_nodes[LOCK_MAX_CPUS][LOCK_MAX_NESTING];

void mcs_lock_init(struct mcs_lock *l)
{
	*l = (struct mcs_lock)MCS_LOCK_INIT(NULL);
}

void mcs_lock(struct mcs_lock *l, struct mcs_node *node)
{
	struct mcs_node *pred;
	struct lock_wait w;

	lock_debug_before(LOCK_META(l), l);
	__atomic_store_n(&node->next, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&node->locked, 0, __ATOMIC_RELAXED);
	pred = __atomic_exchange_n(&l->tail, node, __ATOMIC_ACQ_REL);
	if (lock_likely(!pred)) {
		lock_acquired(LOCK_META(l), NULL);
		return;
	}
	lock_wait_begin(&w);
	__atomic_store_n(&pred->next, node, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&node->locked, __ATOMIC_ACQUIRE)) {
		cpu_relax();
		lock_wait_spin(&w, LOCK_META(l), l);
	}
	lock_acquired(LOCK_META(l), &w);
}

bool mcs_trylock(struct mcs_lock *l, struct mcs_node *node)
{
	struct mcs_node *expect = NULL;

	__atomic_store_n(&node->next, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&node->locked, 0, __ATOMIC_RELAXED);
	if (!__atomic_compare_exchange_n(&l->tail, &expect, node, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_RELAXED))
		return false;
	lock_acquired(LOCK_META(l), NULL);
	return true;
}

void mcs_unlock(struct mcs_lock *l, struct mcs_node *node)
{
	struct mcs_node *next;

	lock_released(LOCK_META(l), l);
	next = __atomic_load_n(&node->next, __ATOMIC_ACQUIRE);
	if (!next) {
		struct mcs_node *expect = node;

		if (__atomic_compare_exchange_n(&l->tail, &expect, NULL, false, __ATOMIC_RELEASE,
		                                __ATOMIC_RELAXED))
			return;
		/* A successor swapped itself in; wait until it links to us. */
		while (!(next = __atomic_load_n(&node->next, __ATOMIC_ACQUIRE)))
			cpu_relax();
	}
	__atomic_store_n(&next->locked, 1, __ATOMIC_RELEASE);
}

bool mcs_is_locked(const struct mcs_lock *l)
{
	return __atomic_load_n(&l->tail, __ATOMIC_RELAXED) != NULL;
}

/* ---- per-CPU nodes ------------------------------------------------------ */

static struct mcs_node *node_claim(struct mcs_lock *l)
{
	int cpu = arch_cpu_id();

	if (cpu < 0 || cpu >= LOCK_MAX_CPUS)
		lock_panic("mcs: CPU#%d beyond LOCK_MAX_CPUS (%d)", cpu, LOCK_MAX_CPUS);
	for (int i = 0; i < LOCK_MAX_NESTING; i++) {
		struct mcs_node *n = &mcs_nodes[cpu][i];

		/* Compiler ordering only: an interrupt is this CPU, in program order. */
		if (!__atomic_load_n(&n->owner, __ATOMIC_RELAXED)) {
			__atomic_store_n(&n->owner, l, __ATOMIC_RELAXED);
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			return n;
		}
	}
	lock_panic("mcs: CPU#%d holds or awaits more than %d MCS locks", cpu, LOCK_MAX_NESTING);
}

static struct mcs_node *node_find(struct mcs_lock *l)
{
	int cpu = arch_cpu_id();

	for (int i = 0; i < LOCK_MAX_NESTING; i++)
		if (mcs_nodes[cpu][i].owner == l)
			return &mcs_nodes[cpu][i];
	lock_panic("mcs: CPU#%d unlocks MCS lock %p it does not hold", cpu, (const void *)l);
}

void mcs_spin_lock(struct mcs_lock *l)
{
	mcs_lock(l, node_claim(l));
}

bool mcs_spin_trylock(struct mcs_lock *l)
{
	struct mcs_node *n = node_claim(l);

	if (mcs_trylock(l, n))
		return true;
	n->owner = NULL;
	return false;
}

void mcs_spin_unlock(struct mcs_lock *l)
{
	struct mcs_node *n = node_find(l);

	mcs_unlock(l, n);
	n->owner = NULL;
}

/* ---- The registry descriptors (registry.h): what every suite tests and measures. */

/*
 * CPUs holding or waiting: the queue from the holder's node `n` on.  A
 * waiter is in the queue once it has exchanged itself into tail, but its
 * predecessor's next is set a moment later: a tail beyond the last linked
 * node counts as one more (more than one such waiter at once are counted as
 * one, so the length is never over-stated).
 */
static int queue_from(const struct mcs_lock *l, const struct mcs_node *n)
{
	int len = 1;
	const struct mcs_node *next;

	while (len <= LOCK_MAX_CPUS && (next = __atomic_load_n(&n->next, __ATOMIC_ACQUIRE))) {
		n = next;
		len++;
	}
	return len + (__atomic_load_n(&l->tail, __ATOMIC_ACQUIRE) != n);
}

static void mcs_type_init(void *l, const char *name)
{
	struct mcs_lock *lk = l;

	mcs_lock_init(lk);
	lock_set_name(lk, name);
}
static void mcs_type_lock(void *l)
{
	mcs_spin_lock(l);
}
static void mcs_type_unlock(void *l)
{
	mcs_spin_unlock(l);
}
static bool mcs_type_trylock(void *l)
{
	return mcs_spin_trylock(l);
}
static bool mcs_type_is_locked(const void *l)
{
	return mcs_is_locked(l);
}
/* Called by the holder: its node is the one of this CPU tagged with the lock. */
static int mcs_type_queue_len(const void *l)
{
	return queue_from(l, node_find((struct mcs_lock *)l));
}

static const struct lock_type mcs_type = {
    .name = "mcs",
    .origin = "Mellor-Crummey and Scott, ACM TOCS 1991; per-CPU nodes as in Linux's qspinlock",
    .props = LOCK_PROP_FIFO | LOCK_PROP_PERCPU_NODE | LOCK_PROP_IRQ_SAFE,
    .max_nesting = LOCK_MAX_NESTING,
    .size = sizeof(struct mcs_lock),
    .init = mcs_type_init,
    .lock = mcs_type_lock,
    .unlock = mcs_type_unlock,
    .trylock = mcs_type_trylock,
    .is_locked = mcs_type_is_locked,
    .queue_len = mcs_type_queue_len,
};
LOCK_TYPE_REGISTER(mcs_type);

/*
 * The caller-node form: the instance carries one node per CPU, so the
 * descriptor's one-argument lock() can pass this CPU's.
 */
struct mcs_caller {
	struct mcs_lock l;
	struct mcs_node node[LOCK_MAX_CPUS];
};

static struct mcs_node *caller_node(struct mcs_caller *m)
{
	int cpu = arch_cpu_id();

	if (cpu < 0 || cpu >= LOCK_MAX_CPUS)
		lock_panic("mcs: CPU#%d beyond LOCK_MAX_CPUS (%d)", cpu, LOCK_MAX_CPUS);
	return &m->node[cpu];
}

static void mcs_node_type_init(void *l, const char *name)
{
	struct mcs_caller *m = l;

	mcs_lock_init(&m->l);
	lock_set_name(&m->l, name);
}
static void mcs_node_type_lock(void *l)
{
	mcs_lock(&((struct mcs_caller *)l)->l, caller_node(l));
}
static void mcs_node_type_unlock(void *l)
{
	mcs_unlock(&((struct mcs_caller *)l)->l, caller_node(l));
}
static bool mcs_node_type_trylock(void *l)
{
	return mcs_trylock(&((struct mcs_caller *)l)->l, caller_node(l));
}
static bool mcs_node_type_is_locked(const void *l)
{
	return mcs_is_locked(&((const struct mcs_caller *)l)->l);
}
static int mcs_node_type_queue_len(const void *l)
{
	return queue_from(&((const struct mcs_caller *)l)->l, caller_node((struct mcs_caller *)l));
}

static const struct lock_type mcs_node_type = {
    .name = "mcs_node",
    .origin = "Mellor-Crummey and Scott, ACM TOCS 1991 (nodes provided by the caller)",
    .props = LOCK_PROP_FIFO | LOCK_PROP_IRQ_SAFE,
    .max_nesting = 0,
    .size = sizeof(struct mcs_caller),
    .init = mcs_node_type_init,
    .lock = mcs_node_type_lock,
    .unlock = mcs_node_type_unlock,
    .trylock = mcs_node_type_trylock,
    .is_locked = mcs_node_type_is_locked,
    .queue_len = mcs_node_type_queue_len,
};
LOCK_TYPE_REGISTER(mcs_node_type);
