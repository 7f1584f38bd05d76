/*
 * lock_slowdown.c - one lock type made slower by a known delay (LOCK_SLOWDOWN).
 *
 * Built with `make LOCK_SLOWDOWN=TYPE:NS` (the Makefile passes
 * LOCK_SLOWDOWN_TYPE and LOCK_SLOWDOWN_NS), the kernel shows every suite the
 * registered type TYPE through a copy of its descriptor whose lock() takes
 * the lock and then spins NS nanoseconds on the TSC before returning.  The
 * delay is measured with the calibrated TSC rate (ns_to_tsc after
 * time_init), so it is the same wall time on any host and the same guest
 * time under clock=virtual.
 *
 * Why at the descriptor: every suite and benchmark reaches a type through
 * the registry (for_each_lock_type, lock_type_find; registry.h applies
 * lock_slowdown_view there), so exactly that type's figures change.  The
 * kernel's own users of the same code (spinlock_t is a ticket lock, the
 * scheduler takes spinlocks) call the lock functions directly and keep
 * their speed: figures of other types stay as they were, which is what the
 * comparison must be able to show.
 *
 * Why after taking the lock: the delay is then part of the acquire seen by
 * the caller (uncontended cost) and of the time the lock is held (waiters'
 * waits, contended throughput), the two ways a slower fast path shows.
 *
 * Without LOCK_SLOWDOWN this file compiles to nothing.
 */
#include "lock_slowdown.h"
#include "kernel.h"
#include "time.h"
#include "x86.h"

/* The lock headers define cpu_relax() as x86.h does: theirs under another name. */
#define cpu_relax lock_arch_cpu_relax
#include "lock/registry.h"
#undef cpu_relax

#ifdef LOCK_SLOWDOWN

extern int config_errors; /* kernel/main.c: makes boot.cmdline fail */

static const struct lock_type *slowed; /* the registered descriptor */
static struct lock_type slowed_view;   /* its copy with slowed_lock() */
static uint64_t slowed_cycles;

static void slowed_lock(void *lock)
{
	slowed->lock(lock);
	uint64_t start = rdtsc();
	while (rdtsc() - start < slowed_cycles)
		cpu_relax();
}

const struct lock_type *lock_slowdown_view(const struct lock_type *t)
{
	return t == slowed ? &slowed_view : t;
}

void lock_slowdown_init(void)
{
	/* The raw section: the view is not set up yet. */
	for (const struct lock_type *const *pp = __start_lock_types; pp < __stop_lock_types; pp++) {
		if (lock_type_str_eq((*pp)->name, LOCK_SLOWDOWN_TYPE)) {
			slowed_view = **pp;
			slowed_view.lock = slowed_lock;
			slowed_cycles = ns_to_tsc(LOCK_SLOWDOWN_NS);
			/* Set last: the other CPUs are not running yet. */
			slowed = *pp;
			kprintf("# lock slowdown: %s +%lu ns (%lu TSC cycles) in every acquire; "
			        "a build for testing comparisons, not for measuring\n",
			        LOCK_SLOWDOWN_TYPE, (unsigned long)LOCK_SLOWDOWN_NS,
			        (unsigned long)slowed_cycles);
			return;
		}
	}
	kprintf("# config error: LOCK_SLOWDOWN=%s:%lu names no registered lock type\n",
	        LOCK_SLOWDOWN_TYPE, (unsigned long)LOCK_SLOWDOWN_NS);
	config_errors++;
}

#endif /* LOCK_SLOWDOWN */
