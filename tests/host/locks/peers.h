/*
 * peers.h - what the peer benchmark times: locklab's registered lock types
 * and, beside them, other people's locks of the same algorithms (Concurrency
 * Kit, glibc), the atomic floor and the store-forwarding probes.
 *
 * Everything timed goes through the same `struct subject`: a lock and an
 * unlock function taking the instance as `void *`, called through pointers
 * from one loop.  locklab's descriptors already have that shape; the peers'
 * inline functions get out-of-line wrappers here, so every subject pays the
 * same two indirect calls and the figures differ only by what the lock does.
 */
#ifndef LOCKLAB_TESTS_HOST_LOCKS_PEERS_H
#define LOCKLAB_TESTS_HOST_LOCKS_PEERS_H

#include <stdbool.h>
#include <stddef.h>

#define PEER_STORAGE 256 /* bytes of a peer's instance (locklab's: its type's size) */

struct subject {
	const char *name;   /* "ck.ticket", "locklab.mcs", "floor.xadd" */
	const char *source; /* locklab, ck, glibc, floor, probe */
	void (*init)(void *lock);
	void (*lock)(void *lock);
	void (*unlock)(void *lock);
	/*
	 * The lock admits one holder: the harness checks that the shared
	 * counter its section increments adds up.  False for read sides and
	 * for the floor, which exclude nobody.
	 */
	bool exclusive;
	/*
	 * How a waiter gives the CPU up when threads outnumber CPUs: 'c' its
	 * spin calls cpu_relax() (locklab, arch_host_yield_every applies),
	 * 'y' lock_yield retries a trylock around sched_yield(), 's' it
	 * sleeps (a mutex), 0 it cannot (skipped when oversubscribed).
	 */
	char yields;
	void (*lock_yield)(void *lock);
	/* locklab: the registry's descriptor; NULL for the others. */
	const void *type;
	bool read_side;
};

/* The peers, the floor and the probes (peers_ops.c), NULL-terminated by name. */
extern const struct subject peer_subjects[];
/* locklab's locks by hand, for a tree whose lock files do not register yet. */
extern const struct subject locklab_fallback[];

#endif
