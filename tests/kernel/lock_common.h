/*
 * Shared by the `lock` suite's files (lock_torture.c, lock_latency.c,
 * lock_bench.c, lock_pv.c, lock_irq.c): instances of the registered lock
 * types and per-type KTAP results, a runner that starts a body on the first N CPUs at the same
 * moment and stops it at a deadline, per-CPU counters, and the torture and
 * fairness reporting.
 */
#ifndef LOCKLAB_TESTS_LOCK_COMMON_H
#define LOCKLAB_TESTS_LOCK_COMMON_H

#include "cmdline.h"
#include "cpu.h"
#include "hist.h"
#include "irq.h"
#include "kernel.h"
#include "ktest.h"
#include "smp.h"
#include "time.h"
#include "x86.h"

/*
 * kernel/lock/arch_kernel.h and the kernel's x86.h both define cpu_relax()
 * (the same PAUSE).  The lock headers' copy gets another name here, so that
 * a file may include both.
 */
#define cpu_relax lock_arch_cpu_relax
#include "lock/broken.h"
#include "lock/registry.h"
#include "lock/spinlock.h"
#undef cpu_relax

#ifdef LOCK_DEBUG
#define LT_DEBUG_TAG "debug=1"
#else
#define LT_DEBUG_TAG "debug=0"
#endif

/* ---- Per-CPU counters, each CPU on cache lines of its own. */

struct lt_pcpu {
	uint64_t ops;      /* acquisitions (writes) */
	uint64_t reads;    /* read-side critical sections */
	uint64_t fails;    /* exclusion or consistency violations seen */
	uint64_t wait_max; /* longest wait, ns */
	uint64_t x[3];     /* test-specific */
	uint64_t rng;
} __cacheline_aligned;

struct lt_run;
/* Runs on every CPU of the run (cpu < r->ncpus) until lt_over(r). */
typedef void (*lt_body_fn)(struct lt_run *r, int cpu, struct lt_pcpu *pc);

struct lt_run {
	lt_body_fn body;
	void *ctx;
	int ncpus;
	uint64_t duration_ns;
	/* Set by lt_run_cpus(). */
	uint64_t start_tsc, end_tsc; /* the window every CPU started in */
	uint64_t elapsed_ns;         /* start to the last CPU's return */
	int arrived, finished;
	bool go, abort, stop;
	struct lt_pcpu pc[MAX_CPUS];
};

/* The run the suite's tests share (they run one at a time). */
extern struct lt_run lt;

/*
 * Run r->body on CPUs 0..n-1 at once (this CPU is 0) for r->duration_ns,
 * the clock starting when the last of them arrives.  Bounded: false (and a
 * test failure) if a CPU cannot be launched, does not arrive within a
 * second or two, or does not return within timeout_ms.
 */
bool lt_run_cpus(struct lt_run *r, int n, uint64_t timeout_ms);
/* The bound the suites give a run past its duration (emulated CPUs are slow). */
#define LT_RUN_TIMEOUT_MS 5000
/* Reset r for a new run with this body and context. */
void lt_prepare(struct lt_run *r, lt_body_fn body, void *ctx, uint64_t duration_ms);

static inline bool lt_over(const struct lt_run *r)
{
	return (int64_t)(rdtsc() - r->end_tsc) >= 0 || __atomic_load_n(&r->stop, __ATOMIC_RELAXED);
}

/* xorshift64*: cheap per-CPU pseudo-random numbers from the seed. */
static inline uint64_t lt_rand(struct lt_pcpu *pc)
{
	uint64_t x = pc->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	pc->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* A short delay of `n` pause instructions: work inside or outside a section. */
static inline void lt_spin(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		cpu_relax();
}

/*
 * ---- The lock types: every one registered in kernel/lock/ (registry.h),
 * none named here.  A suite picks the types it wants by their properties and
 * runs one instance of each at a time.
 */

/* A registered type and an instance of it. */
struct lt_lock {
	const struct lock_type *t;
	void *l;
};

/* Room for one instance, and how many instances the suites use at once. */
#define LT_LOCK_BYTES 65536
#define LT_SLOTS 2

/*
 * Initialise instance `slot` of `t` (named lock.<type>) into *lk.  False,
 * with a test failure, if the type's instance does not fit LT_LOCK_BYTES.
 */
bool lt_use(struct lt_lock *lk, const struct lock_type *t, int slot);

static inline void lt_acquire(const struct lt_lock *lk)
{
	lk->t->lock(lk->l);
}
static inline void lt_release(const struct lt_lock *lk)
{
	lk->t->unlock(lk->l);
}
static inline bool lt_broken(const struct lock_type *t)
{
	return t->props & LOCK_PROP_BROKEN;
}

/*
 * Per-type results inside one test, as a nested KTAP list:
 *     lt_sub_begin(&s, n);  ...  lt_sub_end(&s, t, skip);  (once per type)
 * A failing type is `not ok` and fails the test; a LOCK_PROP_BROKEN type is
 * expected to fail (XFAIL) and is `not ok` when it does not.  The tests
 * print a `# lock: <type>: ...` line for each failure through lt_sub_fail.
 */
struct lt_sub {
	int n, index;
	bool failed;
};
void lt_sub_begin(struct lt_sub *s, int n);
void lt_sub_fail(struct lt_sub *s, const struct lock_type *t, const char *fmt, ...) __printf(3, 4);
/* Closes the type's entry: ok, not ok, XFAIL or (skip != NULL) SKIP. */
void lt_sub_end(struct lt_sub *s, const struct lock_type *t, const char *skip);

/* LOCK_STAT figures of an instance (NULL when the type keeps none). */
static inline const struct lock_stat *lt_stat(const struct lt_lock *lk)
{
	return lk->t->stat ? lk->t->stat(lk->l) : NULL;
}

/* ---- The exclusive critical section the torture and throughput runs share. */

/* Pauses between reading the shared counter and writing it back: the window a second CPU needs. */
#define LT_CS_WINDOW 6

struct lt_shared {
	uint64_t counter; /* plain read-pause-write increments */
	int owner;        /* occupancy probe: CPU id + 1 of the CPU inside, 0: nobody */
} __cacheline_aligned;

extern struct lt_shared lt_xs;

static inline void lt_exclusive_section(int cpu, struct lt_pcpu *pc)
{
	uint64_t v;

	if (READ_ONCE(lt_xs.owner) != 0)
		pc->fails++;
	WRITE_ONCE(lt_xs.owner, cpu + 1);
	v = READ_ONCE(lt_xs.counter);
	lt_spin(LT_CS_WINDOW);
	WRITE_ONCE(lt_xs.counter, v + 1);
	if (READ_ONCE(lt_xs.owner) != cpu + 1)
		pc->fails++;
	WRITE_ONCE(lt_xs.owner, 0);
}

/* r->ctx is a struct lt_lock: lock, section, unlock, a short random pause; counts in ops. */
void lt_exclusion_body(struct lt_run *r, int cpu, struct lt_pcpu *pc);
/* Violations of the last exclusion run on n CPUs: probe hits plus lost (or extra) updates. */
uint64_t lt_exclusion_fails(const struct lt_run *r, int n);

/* ---- Reporting. */

struct lt_counts {
	uint64_t total, max, min;
	int max_cpu, min_cpu;
};

/* Sum, max and min of a per-CPU field over CPUs 0..n-1 (off: offsetof in lt_pcpu). */
struct lt_counts lt_count(const struct lt_run *r, int n, size_t off);
#define LT_COUNT(r, n, field) lt_count((r), (n), __builtin_offsetof(struct lt_pcpu, field))
uint64_t lt_sum(const struct lt_run *r, int n, size_t off);
#define LT_SUM(r, n, field) lt_sum((r), (n), __builtin_offsetof(struct lt_pcpu, field))

/* `# <lock>-torture: <Writes|Reads>:  Total: ..  Max/Min: ../.. [???]  Fail: .. [!!!]` */
void lt_torture_line(const char *lock, const char *kind, const struct lt_counts *c, uint64_t fails);
/* max/min * 1000; LT_RATIO_INF when some CPU never got the lock. */
#define LT_RATIO_INF 999999999ull
uint64_t lt_ratio_x1000(uint64_t max, uint64_t min);
/* `# metric: lock.<name>.<what> <v> <unit> [extra]` */
void lt_metric(const char *name, const char *what, long long v, const char *unit,
               const char *extra);
/* The same with v_x1000 / 1000 printed to three decimals. */
void lt_metric_x1000(const char *name, const char *what, uint64_t v_x1000, const char *unit,
                     const char *extra);

/* A PV spin threshold worth about `ns` of spinning here (PAUSE timed on this CPU). */
unsigned lt_pv_threshold_for_ns(uint64_t ns);

/*
 * vCPUs outnumber host CPUs (false when the host CPU count is unknown).
 * Never under clock=virtual: there all vCPUs take turns on one host thread
 * and a waiter's PAUSE hands its turn on, so spinning wastes no host time
 * and nothing is overcommitted in the sense the PV locks answer
 * (docs/clock.md).
 */
static inline bool lt_overcommitted(void)
{
	return config.host_cpus > 0 && num_online_cpus() > config.host_cpus &&
	       config.clock != CLOCK_VIRTUAL;
}

#endif
