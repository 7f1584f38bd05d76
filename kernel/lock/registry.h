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
 */
#ifndef LOCKLAB_LOCK_REGISTRY_H
#define LOCKLAB_LOCK_REGISTRY_H

#include "arch.h"

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
};

#define LOCK_TYPE_REGISTER(desc)                                  \
	static const struct lock_type *const lock_type_ptr_##desc \
	    __attribute__((used, section("lock_types"), aligned(sizeof(void *)))) = &(desc)

extern const struct lock_type *const __start_lock_types[];
extern const struct lock_type *const __stop_lock_types[];

#define for_each_lock_type(t, pp)                                    \
	for (const struct lock_type *const *pp = __start_lock_types; \
	     pp < __stop_lock_types && ((t) = *pp, 1); pp++)

#endif /* LOCKLAB_LOCK_REGISTRY_H */
