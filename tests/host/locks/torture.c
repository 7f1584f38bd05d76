/*
 * torture.c - host torture tests and benchmark for kernel/lock/.
 *
 * The lock sources are compiled unchanged with -DLOCKLAB_HOST; each pthread
 * plays one CPU.  Built twice by host.mk:
 *   - with ThreadSanitizer, LOCK_DEBUG and LOCK_STAT: the test suite.  The data
 *     inside critical sections is updated with plain (non-atomic) accesses, so
 *     a lock whose ordering were too weak would show up as a data race, and a
 *     lock that admitted two CPUs would show up in the counts;
 *   - plain -O2 without debug options: the deliberately broken lock (which
 *     TSan would flag by itself) and --bench.
 *
 * Usage: locktorture [--threads=N] [--ms=N] [--plain=PATH] [--only=NAME] [--yield=N]
 *        locktorture --bench [--threads=N] [--ms=N]
 *        locktorture --child=recursion|timeout|type:NAME   (used by the suite)
 *
 * The suite prints KTAP (locktorture's statistics lines as diagnostics) and
 * exits 0 when every test passed.  What it checks:
 *   <type>_torture   for every lock type registered in kernel/lock/ (no list
 *                    here; torture_excl.c): N threads hammer one lock; a plain
 *                    counter updated inside must equal the number of
 *                    acquisitions, and an occupancy probe must never see two
 *                    holders (Fail counts both); PV types with their spin
 *                    threshold lowered to 64 must really halt and be kicked;
 *                    a broken type (non-TSan child, 10 runs) must be caught
 *                    (XFAIL).
 *   lockstat_ticket  LOCK_STAT saw every acquisition of a ticket lock run.
 *   brk_*_lost_zero  nested breakable locks with cond_resched_lock() (and the
 *                    contended variant): counts add up, breaks happen, and the
 *                    audit counts 0 lost break requests.
 *   brk_legacy_...   the 2.6 clearing-flag protocol: lost requests must be
 *                    caught (XFAIL).
 *   mcs_nesting      per-CPU nodes, caller nodes, nesting, out-of-order release.
 *   rwlock_*         readers see the two fields a writer keeps equal; a waiting
 *                    writer refuses new readers and goes before a later reader.
 *   seqlock          readers never accept a torn pair; every write counted.
 *   multi_*          random overlapping sets of 16 locks, sorted (with
 *                    repeats) or global-first, mixed with single-lock users.
 *   debug_*          child processes must panic on recursion and on a spin
 *                    timeout, naming the lock, the holder, both backtraces.
 *   HOST_TEST()s     tests of one algorithm's own property that other files
 *                    register (torture.h), after the rest.
 * When threads outnumber host CPUs, spinners yield every 128 spins so that
 * FIFO locks make progress (--yield=0 turns that off).
 *
 * This file is the harness: the threads that play CPUs, the results, the
 * list of tests in KTAP order, and main, so that the order of the suite and
 * what it prints around each test are decided in one place.  The tests are
 * in torture_excl.c (the locks that admit one holder, multi-lock included),
 * torture_brk.c (lock breaking), torture_rw.c (rwlock, seqlock) and
 * torture_child.c (the tests that run a child process, and the child modes);
 * --bench is torture_bench.c.  torture.h is what they share.
 */
#define _GNU_SOURCE
#include "torture.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int nthreads = 4;
int run_ms = 400;
const char *plain_bin;
int yield_every = -1; /* -1: auto */
char self_exe[4096];

/* ---- threads ----------------------------------------------------------- */

int g_stop;
static pthread_barrier_t g_barrier;
struct thr thr[MAX_THREADS];

static void *thread_main(void *p)
{
	struct thr *t = p;

	arch_host_set_cpu(t->id);
	pthread_barrier_wait(&g_barrier);
	t->fn(t);
	return NULL;
}

void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000l};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Run @fn on @n threads (CPUs 0..n-1) for @ms milliseconds. */
void run_threads(int n, void (*fn)(struct thr *), int ms)
{
	arch_host_set_num_cpus(n);
	__atomic_store_n(&g_stop, 0, __ATOMIC_RELAXED);
	pthread_barrier_init(&g_barrier, NULL, (unsigned int)n + 1);
	for (int i = 0; i < n; i++) {
		memset(&thr[i], 0, sizeof(thr[i]));
		thr[i].id = i;
		thr[i].rng = 0x9e3779b9u * (unsigned int)(i + 1);
		thr[i].fn = fn;
		if (pthread_create(&thr[i].pt, NULL, thread_main, &thr[i])) {
			perror("pthread_create");
			exit(1);
		}
	}
	pthread_barrier_wait(&g_barrier);
	sleep_ms(ms);
	__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < n; i++)
		pthread_join(thr[i].pt, NULL);
	pthread_barrier_destroy(&g_barrier);
}

/* ---- results ----------------------------------------------------------- */

struct totals sum_of(int n, size_t off)
{
	struct totals r = {0, 0, UINT64_MAX};

	for (int i = 0; i < n; i++) {
		uint64_t v = *(uint64_t *)((char *)&thr[i] + off);

		r.total += v;
		r.max = v > r.max ? v : r.max;
		r.min = v < r.min ? v : r.min;
	}
	if (!n)
		r.min = 0;
	return r;
}

/* locktorture's statistics line, as a KTAP diagnostic. */
void torture_line(const char *lock, const char *kind, struct totals t, uint64_t fail)
{
	printf("# %s-torture: %s:  Total: %llu  Max/Min: %llu/%llu %s  Fail: %llu %s\n", lock, kind,
	       (unsigned long long)t.total, (unsigned long long)t.max, (unsigned long long)t.min,
	       t.max > 2 * t.min ? "???" : "", (unsigned long long)fail, fail ? "!!!" : "");
	fflush(stdout);
}

struct result verdict(enum verdict v, const char *fmt, ...)
{
	struct result r = {v, ""};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r.why, sizeof(r.why), fmt, ap);
	va_end(ap);
	return r;
}

struct result passed(void)
{
	return (struct result){PASS, ""};
}

/* ---- suite -------------------------------------------------------------- */

struct test {
	const char *name;
	struct result (*fn)(void);
};

/* The tests of no single lock type's torture; the types' come from the registry. */
static const struct test tests[] = {
    {"lockstat_ticket", t_lockstat},
    {"spin_lock_api_torture", t_spin},
    {"brk_lockbreak_lost_zero", t_brk_lockbreak},
    {"brk_contended_lost_zero", t_brk_contended},
    {"brk_legacy_flag_loses_requests", t_brk_legacy},
    {"mcs_nesting", t_mcs},
    {"rwlock_readers_torture", t_rwlock},
    {"rwlock_writer_fair", t_rwlock_fair},
    {"seqlock_torture", t_seqlock},
    {"multi_sorted_torture", t_multi_sorted},
    {"multi_global_torture", t_multi_global},
    {"debug_recursion_panics", t_debug_recursion},
    {"debug_spin_timeout_panics", t_debug_timeout},
};

extern const struct host_test *const __start_host_tests[] __attribute__((weak));
extern const struct host_test *const __stop_host_tests[] __attribute__((weak));

/* One entry of the run: a listed test, a registered type's torture, or a HOST_TEST. */
struct entry {
	char name[80];
	struct result (*fn)(void);
	const struct lock_type *type;
};

#define MAX_ENTRIES 128
static struct entry entries[MAX_ENTRIES];

static int collect(void)
{
	const struct lock_type *t;
	int n = 0;

	for_each_lock_type(t, pp) {
		if (n < MAX_ENTRIES) {
			snprintf(entries[n].name, sizeof(entries[n].name), "%s_torture", t->name);
			entries[n++].type = t;
		}
	}
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]) && n < MAX_ENTRIES; i++) {
		snprintf(entries[n].name, sizeof(entries[n].name), "%s", tests[i].name);
		entries[n++].fn = tests[i].fn;
	}
	for (const struct host_test *const *h = __start_host_tests;
	     h && h < __stop_host_tests && n < MAX_ENTRIES; h++) {
		snprintf(entries[n].name, sizeof(entries[n].name), "%s", (*h)->name);
		entries[n++].fn = (*h)->fn;
	}
	return n;
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "Bail out! host lock tests timed out\n";

	if (write(1, msg, sizeof(msg) - 1) < 0) {
	}
	_exit(3);
}

static int suite_main(const char *only)
{
	int n = collect();
	int pass = 0, fail = 0, skip = 0, num = 0;
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);

	/* oversubscribed: let spinners yield now and then, or FIFO locks crawl */
	if (yield_every < 0)
		yield_every = nthreads > ncpu ? 128 : 0;
	arch_host_yield_every = (unsigned int)yield_every;
	signal(SIGALRM, on_alarm);
	alarm(120);
	printf("KTAP version 1\n");
	if (only) {
		int m = 0;

		for (int i = 0; i < n; i++)
			m += !strcmp(entries[i].name, only);
		printf("1..%d\n", m);
	} else {
		printf("1..%d\n", n);
	}
	printf("# host lock tests: %d threads on %d host CPUs, yield every %d spins, "
	       "%d ms per torture run%s%s\n",
	       nthreads, ncpu, yield_every, run_ms,
#ifdef LOCK_DEBUG
	       ", LOCK_DEBUG",
#else
	       "",
#endif
#ifdef LOCK_STAT
	       ", LOCK_STAT"
#else
	       ""
#endif
	);
	arch_host_set_num_cpus(nthreads);
	arch_host_set_cpu(0);
	for (int i = 0; i < n; i++) {
		struct result r;

		if (only && strcmp(entries[i].name, only))
			continue;
		num++;
		fflush(stdout);
		r = entries[i].type ? t_type(entries[i].type) : entries[i].fn();
		switch (r.v) {
		case PASS:
			printf("ok %d %s\n", num, entries[i].name);
			pass++;
			break;
		case XFAIL:
			printf("ok %d %s # XFAIL %s\n", num, entries[i].name, r.why);
			pass++;
			break;
		case SKIP:
			printf("ok %d %s # SKIP %s\n", num, entries[i].name, r.why);
			skip++;
			break;
		default:
			printf("# %s: %s\n", entries[i].name, r.why);
			printf("not ok %d %s\n", num, entries[i].name);
			fail++;
			break;
		}
		fflush(stdout);
	}
	printf("# Totals: pass:%d fail:%d skip:%d total:%d\n", pass, fail, skip, num);
	return fail ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *child = NULL, *only = NULL;
	bool bench = false, ms_given = false;
	ssize_t n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strncmp(a, "--threads=", 10))
			nthreads = atoi(a + 10);
		else if (!strncmp(a, "--ms=", 5))
			run_ms = atoi(a + 5), ms_given = true;
		else if (!strncmp(a, "--yield=", 8))
			yield_every = atoi(a + 8);
		else if (!strncmp(a, "--plain=", 8))
			plain_bin = a + 8;
		else if (!strncmp(a, "--child=", 8))
			child = a + 8;
		else if (!strncmp(a, "--only=", 7))
			only = a + 7;
		else if (!strcmp(a, "--bench"))
			bench = true;
		else {
			fprintf(stderr,
			        "usage: %s [--threads=N] [--ms=N] [--plain=PATH] [--only=TEST] "
			        "[--yield=N] [--bench]\n",
			        argv[0]);
			return 4;
		}
	}
	if (nthreads < 1 || nthreads > MAX_THREADS || run_ms < 1) {
		fprintf(stderr, "--threads must be 1..%d, --ms positive\n", MAX_THREADS);
		return 4;
	}
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n > 0)
		self_exe[n] = 0;
	if (child)
		return child_main(child);
	if (bench) {
		if (!ms_given)
			run_ms = 250;
		return bench_main();
	}
	return suite_main(only);
}
