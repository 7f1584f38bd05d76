/*
 * registry.h - one descriptor per lock type, collected without a central list.
 *
 * Each lock file in this directory ends with a `struct lock_type` describing
 * it and LOCK_TYPE_REGISTER(), which drops a pointer to it into the
 * `lock_types` section.  The linker provides __start_lock_types and
 * __stop_lock_types for a section named like a C identifier (kernel and host
 * alike), so the suites, the host torture and the benchmarks walk every lock
 * there is without anybody keeping a table: adding a lock is adding its
 * .c/.h pair.
 *
 * The operations take the lock instance as `void *`; `size` bytes of storage
 * (aligned to a cache line by the caller) hold one instance.  Tests know
 * nothing of a lock's internals beyond this descriptor.  A lock's own special
 * properties (the breakable lock's lost requests, the PV locks' kicks) keep
 * their own tests.
 *
 * What the suites do with the properties (docs/locks.md has the table):
 *   every type         exclusion torture, uncontended cost, throughput by CPU
 *                      count, wait histograms, the host torture and bench;
 *   LOCK_PROP_BROKEN   the same tortures, reported XFAIL: a broken type whose
 *                      torture passes is `not ok` (the check could not fail);
 *   LOCK_PROP_FIFO     fairness: turns in exact rotation (max/min bounded
 *                      under clock=virtual, reported in real time)
 *                      (needs queue_len); other types are reported only;
 *   LOCK_PROP_PV       overcommit, beside its non-PV counterpart (pv_of);
 *   LOCK_PROP_IRQ_SAFE taken from interrupt handlers (lock_irq.c);
 *   LOCK_PROP_RW       the reader-writer torture (read_lock/read_unlock).
 *
 * Later additions (all optional: leave them out and the suites cope):
 *   queue_len   CPUs holding or waiting, read from the lock by its holder;
 *               the strict fairness check counts a turn only when every CPU
 *               was queued (NULL: FIFO turns cannot be judged, ratio only);
 *   pv_of       the type this is the paravirtual form of ("ticket" for
 *               "pvticket"); NULL: the name without a leading "pv";
 *   spin_threshold  PV types: set the spins before halting and return the
 *               old value (tests lower it so that waiters halt and are kicked);
 *   stat        the instance's LOCK_STAT figures (NULL: none kept); the
 *               torture checks that they count every acquisition;
 *   pv_counts   PV types: halts and kicks of all instances so far (the
 *               overcommit test checks that both happened).
 * lock_type_find() looks a type up by name, lock_type_count() counts them.
 */
#ifndef LOCKLAB_LOCK_REGISTRY_H
#define LOCKLAB_LOCK_REGISTRY_H

#include "arch.h"
#include "lock_debug.h"

/* Properties: what a suite may expect of the type. */
#define LOCK_PROP_FIFO (1u << 0)        /* grants in arrival order */
#define LOCK_PROP_PV (1u << 1)          /* waiters halt and are kicked (paravirtual) */
#define LOCK_PROP_RW (1u << 2)          /* read_lock/read_unlock are set */
#define LOCK_PROP_PERCPU_NODE (1u << 3) /* queues per-CPU nodes: one per nesting level */
#define LOCK_PROP_BROKEN (1u << 4)      /* deliberately broken: suites expect it to fail (XFAIL) */
#define LOCK_PROP_IRQ_SAFE (1u << 5)    /* may be taken from interrupt handlers */

struct lock_type {
	const char *name;   /* short and unique: "ticket", "qspinlock" */
	const char *origin; /* the paper or Linux commit it comes from */
	unsigned props;     /* LOCK_PROP_* */
	int max_nesting;    /* locks of this type one CPU may hold at once (0: no limit) */
	size_t size;        /* bytes of one instance */

	void (*init)(void *lock, const char *name);
	void (*lock)(void *lock);
	void (*unlock)(void *lock);
	bool (*trylock)(void *lock); /* NULL: none */
	/* NULL where the type cannot tell. */
	bool (*is_locked)(const void *lock);
	bool (*is_contended)(const void *lock);
	/* Reader side (LOCK_PROP_RW). */
	void (*read_lock)(void *lock);
	void (*read_unlock)(void *lock);
	/* Optional, see the top comment. */
	int (*queue_len)(const void *lock);
	const char *pv_of;
	unsigned (*spin_threshold)(unsigned spins);
	const struct lock_stat *(*stat)(const void *lock);
	void (*pv_counts)(uint64_t *halts, uint64_t *kicks);
};

#define LOCK_TYPE_REGISTER(desc)                                  \
	static const struct lock_type *const lock_type_ptr_##desc \
	    __attribute__((used, section("lock_types"), aligned(sizeof(void *)))) = &(desc)

extern const struct lock_type *const __start_lock_types[];
extern const struct lock_type *const __stop_lock_types[];

/*
 * A kernel built with LOCK_SLOWDOWN=TYPE:NS (kernel/lock_slowdown.c) shows
 * that one type through a descriptor whose lock() also waits NS ns; without
 * it the view is the descriptor itself and nothing is compiled.
 */
#ifdef LOCK_SLOWDOWN
const struct lock_type *lock_slowdown_view(const struct lock_type *t);
#define LOCK_TYPE_VIEW(t) lock_slowdown_view(t)
#else
#define LOCK_TYPE_VIEW(t) (t)
#endif

#define for_each_lock_type(t, pp)                                    \
	for (const struct lock_type *const *pp = __start_lock_types; \
	     pp < __stop_lock_types && ((t) = LOCK_TYPE_VIEW(*pp), 1); pp++)

static inline bool lock_type_str_eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* The registered type called `name`, or NULL. */
static inline const struct lock_type *lock_type_find(const char *name)
{
	const struct lock_type *t;

	for_each_lock_type(t, pp) {
		if (lock_type_str_eq(t->name, name))
			return t;
	}
	return NULL;
}

static inline int lock_type_count(void)
{
	return (int)(__stop_lock_types - __start_lock_types);
}

/* The non-PV counterpart of a PV type (pv_of, or the name without "pv"), or NULL. */
static inline const struct lock_type *lock_type_pv_base(const struct lock_type *t)
{
	if (t->pv_of)
		return lock_type_find(t->pv_of);
	if (t->name[0] == 'p' && t->name[1] == 'v')
		return lock_type_find(t->name + 2);
	return NULL;
}

#endif /* LOCKLAB_LOCK_REGISTRY_H */
