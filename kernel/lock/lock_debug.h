/*
 * lock_debug.h - compile-time debug checks and statistics shared by all locks.
 *
 * LOCK_DEBUG (on in tests, off in benchmarks):
 *   - owner: the holder's CPU id is kept in the lock;
 *   - recursion: taking a lock this CPU already holds panics with the lock's
 *     name instead of deadlocking;
 *   - spin-timeout: a waiter that has spun for lock_spin_timeout_ns
 *     (LOCK_SPIN_TIMEOUT_NS, 2 s) prints who holds the lock, its own backtrace,
 *     asks the holder CPU for its backtrace, and panics.  Time the waiter
 *     itself did not run (a gap of LOCK_WAIT_ABSENT_NS or more between two of
 *     its clock checks: its vCPU, or the whole machine, stopped by the host)
 *     does not count: it says nothing about the holder.
 * LOCK_STAT: per-lock acquisitions, contentions, wait and hold times (sum, max,
 *   log2 histogram).  The statistics are updated only by the lock holder, so
 *   the lock itself protects them.
 *
 * With both off every hook below is an empty inline and the lock structures
 * carry no extra field: measurement stays out of the measured fast paths.
 */
#ifndef LOCKLAB_LOCK_DEBUG_H
#define LOCKLAB_LOCK_DEBUG_H

#include "arch.h"

#define LOCK_SPIN_TIMEOUT_NS 2000000000ull /* 2 s: far beyond any sane hold time */
#define LOCK_TIMEOUT_CHECK_EVERY 1024      /* spins between clock reads (power of 2) */
/*
 * A running waiter reads the clock every 1024 spins (well under a millisecond
 * even under TCG) or after each halt (woken by the next tick at the latest);
 * a gap this long means it was not running.
 */
#define LOCK_WAIT_ABSENT_NS 100000000ull /* 100 ms */
#define LOCK_STAT_BUCKETS 32             /* bucket b: [2^(b-1), 2^b) ns; 0: 0 ns */

extern uint64_t lock_spin_timeout_ns; /* tests may shorten it */

struct lock_stat {
	uint64_t acquisitions;
	uint64_t contentions; /* acquisitions that had to wait */
	uint64_t wait_ns_sum, wait_ns_max;
	uint64_t hold_ns_sum, hold_ns_max;
	uint64_t wait_hist[LOCK_STAT_BUCKETS];
	uint64_t hold_hist[LOCK_STAT_BUCKETS];
	uint64_t hold_start;
};

struct lock_meta {
#ifdef LOCK_DEBUG
	int owner; /* holder's CPU id + 1; 0: not held */
	const char *name;
#endif
#ifdef LOCK_STAT
	struct lock_stat stat;
#endif
	char unused_;
};

#if defined(LOCK_DEBUG) || defined(LOCK_STAT)
#define LOCK_META_FIELD struct lock_meta meta;
#define LOCK_META(l) (&(l)->meta)
#else
#define LOCK_META_FIELD
#define LOCK_META(l) ((struct lock_meta *)0)
#endif

#ifdef LOCK_DEBUG
#define LOCK_META_INIT(n) , .meta.name = (n)
#define lock_set_name(l, n) ((l)->meta.name = (n))
#else
#define LOCK_META_INIT(n)
#define lock_set_name(l, n) ((void)(l), (void)(n))
#endif

/* State of one waiter while it spins. */
struct lock_wait {
	uint64_t start;
	uint64_t last_check; /* the clock at the previous timeout check */
	uint64_t absent;     /* ns this waiter did not run (LOCK_WAIT_ABSENT_NS) */
	unsigned int spins;
};

/* Out of line, in lock_debug.c. */
_Noreturn void lock_recursion(const struct lock_meta *m, const void *lock, const char *what);
void lock_wait_check(struct lock_wait *w, const struct lock_meta *m, const void *lock);
void lock_unlock_check(const struct lock_meta *m, const void *lock);
void lock_stat_record(uint64_t *hist, uint64_t *sum, uint64_t *max, uint64_t ns);
void lock_stat_print(const char *name, const struct lock_stat *s);
void lock_stat_reset(struct lock_stat *s);
int lock_owner_cpu(const struct lock_meta *m); /* -1: unknown/not held */

/* Before trying to acquire: catch a CPU that already holds the lock. */
static inline void lock_debug_before(const struct lock_meta *m, const void *lock)
{
#ifdef LOCK_DEBUG
	if (lock_unlikely(__atomic_load_n(&m->owner, __ATOMIC_RELAXED) == arch_cpu_id() + 1))
		lock_recursion(m, lock, "recursive locking");
#else
	(void)m;
	(void)lock;
#endif
}

/* The lock is contended: start the clock for timeout and wait statistics. */
static inline void lock_wait_begin(struct lock_wait *w)
{
#if defined(LOCK_DEBUG) || defined(LOCK_STAT)
	w->start = arch_now_ns();
	w->last_check = w->start;
	w->absent = 0;
#endif
	w->spins = 0;
}

/* Check the clock now (after a halt, where spins are few but long). */
static inline void lock_wait_poll(struct lock_wait *w, const struct lock_meta *m, const void *lock)
{
#ifdef LOCK_DEBUG
	lock_wait_check(w, m, lock);
#else
	(void)w;
	(void)m;
	(void)lock;
#endif
}

/* One spin of a waiter; every LOCK_TIMEOUT_CHECK_EVERY spins, check the clock. */
static inline void lock_wait_spin(struct lock_wait *w, const struct lock_meta *m, const void *lock)
{
#ifdef LOCK_DEBUG
	if (lock_likely((++w->spins & (LOCK_TIMEOUT_CHECK_EVERY - 1)) != 0))
		return;
#endif
	lock_wait_poll(w, m, lock);
}

/* Just acquired (@w: the wait state if we had to wait, else NULL). */
static inline void lock_acquired(struct lock_meta *m, struct lock_wait *w)
{
#ifdef LOCK_DEBUG
	__atomic_store_n(&m->owner, arch_cpu_id() + 1, __ATOMIC_RELAXED);
#endif
#ifdef LOCK_STAT
	uint64_t now = arch_now_ns();

	m->stat.acquisitions++;
	if (w) {
		m->stat.contentions++;
		lock_stat_record(m->stat.wait_hist, &m->stat.wait_ns_sum, &m->stat.wait_ns_max,
		                 now - w->start);
	} else {
		m->stat.wait_hist[0]++;
	}
	m->stat.hold_start = now;
#endif
	(void)m;
	(void)w;
}

/* About to release. */
static inline void lock_released(struct lock_meta *m, const void *lock)
{
#ifdef LOCK_STAT
	lock_stat_record(m->stat.hold_hist, &m->stat.hold_ns_sum, &m->stat.hold_ns_max,
	                 arch_now_ns() - m->stat.hold_start);
#endif
#ifdef LOCK_DEBUG
	if (lock_unlikely(__atomic_load_n(&m->owner, __ATOMIC_RELAXED) != arch_cpu_id() + 1))
		lock_unlock_check(m, lock);
	__atomic_store_n(&m->owner, 0, __ATOMIC_RELAXED);
#endif
	(void)m;
	(void)lock;
}

#endif /* LOCKLAB_LOCK_DEBUG_H */
