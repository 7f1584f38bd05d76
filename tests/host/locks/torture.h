/*
 * What locktorture's files share: the threads that play CPUs and their
 * counters, the results every test returns, and the locks that the
 * benchmark times in the same shape as the tests torture them.  The helpers
 * that run inside the timed loops are inline here so that moving a test to
 * another file does not make its loop slower.
 */
#ifndef LOCKLAB_TESTS_HOST_LOCKS_TORTURE_H
#define LOCKLAB_TESTS_HOST_LOCKS_TORTURE_H

#include "registry.h"
#include "spinlock.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_THREADS 16

extern int nthreads;
extern int run_ms;
extern const char *plain_bin;
extern int yield_every; /* -1: auto */
extern char self_exe[4096];

/* ---- threads ----------------------------------------------------------- */

struct thr {
	int id;
	unsigned int rng;
	uint64_t ops, reads, writes, retries, breaks;
	uint64_t wait_max_ns, wait_sum_ns, waits;
	uint64_t expect[32];
	void (*fn)(struct thr *t);
	pthread_t pt;
};

extern int g_stop;
extern struct thr thr[MAX_THREADS];

static inline bool running(void)
{
	return !__atomic_load_n(&g_stop, __ATOMIC_RELAXED);
}

static inline unsigned int rnd(struct thr *t)
{
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 17;
	t->rng ^= t->rng << 5;
	return t->rng;
}

static inline void delay(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		cpu_relax();
}

/* A plain read-modify-write of a counter the caller's lock protects. */
static inline void bump(uint64_t *p, struct thr *t)
{
	uint64_t v = *(volatile uint64_t *)p;

	delay(rnd(t) & 3);
	*(volatile uint64_t *)p = v + 1;
}

void sleep_ms(int ms);
void run_threads(int n, void (*fn)(struct thr *), int ms);

/* ---- results ----------------------------------------------------------- */

struct totals {
	uint64_t total, max, min;
};

struct totals sum_of(int n, size_t off);

#define SUM(field) sum_of(nthreads, offsetof(struct thr, field))

void torture_line(const char *lock, const char *kind, struct totals t, uint64_t fail);

enum verdict { PASS, FAIL, XFAIL, SKIP };

struct result {
	enum verdict v;
	char why[160];
};

struct result verdict(enum verdict v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct result passed(void);

/* ---- mutual exclusion, one lock (torture_excl.c) ------------------------ */

struct excl_ops {
	const char *name;
	void (*lock)(void);
	void (*unlock)(void);
};

uint64_t excl_run(const struct excl_ops *ops, int ms, bool print);

#define ML_LOCKS 16 /* the pool the multi-lock tests and the benchmark draw from */

/* Locks the tests torture and the benchmark times. */
extern struct ticket_lock L_ticket; /* torture_excl.c */
extern struct mcs_lock L_mcs;
extern spinlock_t L_spin;
extern struct brk_lock B_a; /* torture_brk.c */
extern rwlock_t RW;         /* torture_rw.c */
extern seqlock_t SQ;
extern uint64_t sq_a; /* what seqlock readers read */

/* ---- every registered lock type (kernel/lock/registry.h) ---------------- */

/*
 * <type>_torture for each type, no list kept (torture_excl.c): the exclusion
 * torture; with the type's own checks where its descriptor offers them
 * (trylock and is_contended, LOCK_STAT counts, PV halts and kicks).  A
 * LOCK_PROP_BROKEN type runs in a child of the plain build (a data race
 * would stop TSan) and must be caught: XFAIL, or `not ok` if it is not.
 */
struct result t_type(const struct lock_type *t);
/* Up to `runs` tortures of a broken type in this process; 0 when caught. */
int broken_type_main(const char *name, int runs);
/* torture_child.c: argv run with its output echoed as diagnostics; its exit status or -1. */
int run_child_echo(char *const argv[], int timeout_ms);

/*
 * Tests of one algorithm's own property (the PV lock's kicks, a lock's
 * audit) register themselves from any file, as the lock types do:
 *     HOST_TEST("pvqspinlock_no_lost_kicks", t_pvq_kicks);
 * They run after the per-type tortures, in link order.
 */
struct host_test {
	const char *name;
	struct result (*fn)(void);
};
#define HOST_TEST(name_, fn_)                                                       \
	static const struct host_test host_test_##fn_ = {name_, fn_};               \
	static const struct host_test *const host_test_ptr_##fn_                    \
	    __attribute__((used, section("host_tests"), aligned(sizeof(void *)))) = \
	        &host_test_##fn_

/* ---- the tests, in the files named ------------------------------------- */

/* torture_excl.c */
struct result t_lockstat(void);
struct result t_spin(void);
struct result t_mcs(void);
struct result t_multi_sorted(void);
struct result t_multi_global(void);

/* torture_brk.c */
struct result t_brk_lockbreak(void);
struct result t_brk_contended(void);
struct result t_brk_legacy(void);

/* torture_rw.c */
struct result t_rwlock(void);
struct result t_rwlock_fair(void);
struct result t_seqlock(void);

/* torture_child.c */
struct result t_debug_recursion(void);
struct result t_debug_timeout(void);
int child_main(const char *what);

/* torture_bench.c */
int bench_main(void);

#endif
