/*
 * peers.c - locklab's locks beside Concurrency Kit's, glibc's and the atomic
 * floor, timed in one process by one loop (build/host/locks/plain/peers).
 *
 * Subjects: every lock type in the registry (kernel/lock/registry.h; a new
 * lock appears here by registering itself), its reader side when it has one,
 * the seqlock (no lock type: by hand) and the table in peers_ops.c.  All
 * are called through the same function pointers (peers.h), so a ratio
 * between two figures compares what the two locks do, not how they were
 * called.
 *
 * Figures, each over --reps repeats taken in rounds (repeat r of every
 * subject before repeat r+1 of any, so that a change in the host's load
 * spreads over all subjects instead of hitting one):
 *
 *   host.peers.<subject>.uncontended_ns   one thread, lock + counter++ + unlock
 *                                         (a repeat: the best of 5 batches)
 *   host.peers.<subject>.throughput       ops/s with 2, 4, ... --threads threads
 *                                         (a repeat: the best 10 ms window)
 *
 * each once with loop=tight (back to back, what others publish) and once
 * with loop=work (a fixed dependent ALU chain outside the critical section,
 * --work steps; floor.none's figure is the loop plus that work alone).
 * --oversub=T adds throughput with T threads on fewer CPUs, spinners
 * yielding (mode=oversub-yield; subjects that cannot yield are left out).
 * The value is the median; min, q1, q3, max and every sample are attributes,
 * so a report can pair repeats and give ratios with intervals.
 *
 * A run of an exclusive subject checks that the counter its sections
 * increment adds up to the acquisitions; a mismatch prints `# peers: FAIL`
 * and the exit status is 1 (--include-broken shows it on the deliberately
 * broken lock).
 */
#define _GNU_SOURCE
#include "peers.h"
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* An empty `lock_types` section leaves the linker's bounds undefined: weak, they are NULL. */
extern const struct lock_type *const __start_lock_types[] __attribute__((weak));
extern const struct lock_type *const __stop_lock_types[] __attribute__((weak));

#define MAX_SUBJECTS 96
#define MAX_REPS 64
#define MAX_THREADS 64

static struct subject subjects[MAX_SUBJECTS];
static int nsubjects;

static int opt_reps = 11, opt_treps = 5, opt_ms = 100, opt_threads, opt_work = 16;
static int opt_oversub;
static long opt_iters = 100000;
static const char *opt_only;
static bool opt_broken, opt_no_throughput;
static int ncpu;
static int failures;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The work outside the section: a dependent chain the compiler cannot drop. */
static inline void work(int steps)
{
	unsigned long x = (unsigned long)steps;

	for (int i = 0; i < steps; i++)
		__asm__ __volatile__("imul $3, %0, %0" : "+r"(x));
}

/* ---- subjects ------------------------------------------------------------ */

static const struct lock_type *type_of(const struct subject *s)
{
	return s->type;
}

static unsigned char *lock_mem; /* one instance of the largest subject, cache-line aligned */
static size_t lock_size = PEER_STORAGE;

static void subject_init(const struct subject *s, void *lock)
{
	memset(lock, 0, lock_size);
	if (type_of(s))
		type_of(s)->init(lock, s->name);
	else
		s->init(lock);
}

static bool wanted(const char *name)
{
	return !opt_only || strstr(name, opt_only);
}

static void add(struct subject s)
{
	if (!wanted(s.name) || (!strncmp(s.name, "broken.", 7) && !opt_broken))
		return;
	if (nsubjects == MAX_SUBJECTS) {
		fprintf(stderr, "peers: more than %d subjects\n", MAX_SUBJECTS);
		exit(2);
	}
	subjects[nsubjects++] = s;
}

static bool lock_type_registered(const char *name)
{
	const struct lock_type *t;

	for_each_lock_type(t, pp)
		if (!strcmp(t->name, name))
			return true;
	return false;
}

static void collect(void)
{
	const struct lock_type *t;
	static char names[MAX_SUBJECTS][64];
	int k = 0;

	for_each_lock_type(t, pp) {
		if ((t->props & LOCK_PROP_BROKEN) && !opt_broken)
			continue;
		if (t->size > lock_size)
			lock_size = (t->size + 63) & ~(size_t)63;
		if (k + 2 > MAX_SUBJECTS)
			break;
		snprintf(names[k], sizeof(names[k]), "locklab.%s", t->name);
		add((struct subject){names[k++], "locklab", NULL, t->lock, t->unlock,
		                     !(t->props & LOCK_PROP_BROKEN) || opt_broken, 'c', NULL, t,
		                     false});
		if ((t->props & LOCK_PROP_RW) && t->read_lock && t->read_unlock) {
			snprintf(names[k], sizeof(names[k]), "locklab.%s.read", t->name);
			add((struct subject){names[k++], "locklab", NULL, t->read_lock,
			                     t->read_unlock, false, 'c', NULL, t, true});
		}
	}
	if (!k) {
		printf("# peers: no lock type registered (kernel/lock/registry.h): locklab's locks "
		       "from the list in peers_ops.c\n");
		for (const struct subject *s = locklab_fallback; s->name; s++)
			add(*s);
	} else if (!lock_type_registered("seqlock")) {
		/* The seqlock is no lock_type (its readers retry, they do not lock): by hand. */
		for (const struct subject *s = locklab_fallback; s->name; s++)
			if (!strncmp(s->name, "locklab.seqlock", 15))
				add(*s);
	}
	for (const struct subject *s = peer_subjects; s->name; s++)
		add(*s);
}

/* ---- statistics ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double quantile(const double *sorted, int n, double q)
{
	double pos = q * (n - 1);
	int i = (int)pos;

	return i + 1 < n ? sorted[i] + (pos - i) * (sorted[i + 1] - sorted[i]) : sorted[i];
}

static void print_metric(const char *name, const char *what, const double *samples, int n,
                         const char *unit, const char *attrs)
{
	double s[MAX_REPS];
	char list[MAX_REPS * 16];
	int len = 0;

	for (int i = 0; i < n; i++)
		len += snprintf(list + len, sizeof(list) - (size_t)len, "%s%.4g", i ? "," : "",
		                samples[i]);
	memcpy(s, samples, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp_double);
	printf("# metric: host.peers.%s.%s %.4g %s %s reps=%d min=%.4g q1=%.4g q3=%.4g max=%.4g "
	       "samples=%s\n",
	       name, what, quantile(s, n, 0.5), unit, attrs, n, s[0], quantile(s, n, 0.25),
	       quantile(s, n, 0.75), s[n - 1], list);
}

/* ---- uncontended ---------------------------------------------------------- */

static _Alignas(64) volatile uint64_t counter;

/*
 * One thread, `iters` acquisitions in UNC_BATCHES batches; ns per acquisition
 * of the best batch.  On a shared host a batch during which the thread was
 * preempted or shared its core reads high: the best batch is the lock's own
 * cost, and the repeats' spread still shows how steady that is.
 */
#define UNC_BATCHES 5

static __attribute__((noinline)) double one_thread(const struct subject *s, long iters, int steps)
{
	void (*lock)(void *) = s->lock, (*unlock)(void *) = s->unlock;
	void *l = lock_mem;
	long n = iters / UNC_BATCHES > 0 ? iters / UNC_BATCHES : 1;
	double best = 1e30;

	subject_init(s, l);
	for (int b = 0; b < UNC_BATCHES; b++) {
		uint64_t t0 = now_ns();

		for (long i = 0; i < n; i++) {
			lock(l);
			counter++;
			unlock(l);
			work(steps);
		}
		double ns = (double)(now_ns() - t0) / (double)n;

		best = ns < best ? ns : best;
	}
	return best;
}

static void uncontended(const char *loop, int steps)
{
	static double ns[MAX_SUBJECTS][MAX_REPS];
	char attrs[96];

	for (int i = 0; i < nsubjects; i++) /* warm up: caches, branch predictors, frequency */
		one_thread(&subjects[i], opt_iters / 10, steps);
	for (int r = 0; r < opt_reps; r++)
		for (int i = 0; i < nsubjects; i++)
			ns[i][r] = one_thread(&subjects[i], opt_iters, steps);
	for (int i = 0; i < nsubjects; i++) {
		snprintf(attrs, sizeof(attrs), "loop=%s work=%d source=%s iters=%ld", loop, steps,
		         subjects[i].source, opt_iters);
		print_metric(subjects[i].name, "uncontended_ns", ns[i], opt_reps, "ns", attrs);
	}
	fflush(stdout);
}

/* ---- throughput ------------------------------------------------------------ */

struct worker {
	pthread_t pt;
	int id;
	uint64_t ops;
	void (*lock)(void *);
	void (*unlock)(void *);
	bool exclusive;
	int steps;
} __attribute__((aligned(64)));

static struct worker workers[MAX_THREADS];
static volatile int go, stop_flag;
static pthread_barrier_t ready;

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	void *l = lock_mem;
	uint64_t ops = 0;

	arch_host_set_cpu(w->id);
	pthread_barrier_wait(&ready);
	while (!go)
		__builtin_ia32_pause();
	while (!stop_flag) {
		for (int i = 0; i < 64; i++) {
			w->lock(l);
			if (w->exclusive)
				counter++;
			w->unlock(l);
			work(w->steps);
		}
		ops += 64;
		__atomic_store_n(&w->ops, ops, __ATOMIC_RELAXED); /* read by the window sampler */
	}
	w->ops = ops;
	return NULL;
}

/*
 * ops/s of `n` threads on `s` for opt_ms; < 0 if exclusion failed.  With one
 * thread per CPU the figure is that of the best WINDOW_MS window: on a shared
 * host a window in which another process ran on one of the CPUs measures the
 * host (a FIFO lock stalls while its next waiter is off its CPU), the best
 * one the lock.  Oversubscribed, the scheduler is part of what is measured:
 * the whole run counts.
 */
#define WINDOW_MS 10

static double run_threads(const struct subject *s, int n, int steps, bool oversub)
{
	uint64_t t0, total = 0, prev = 0, prev_t;
	struct timespec ts = {0, WINDOW_MS * 1000000L};
	double best = 0;
	int windows = 0;

	subject_init(s, lock_mem);
	counter = 0;
	go = stop_flag = 0;
	arch_host_set_num_cpus(n);
	arch_host_yield_every = oversub ? 128 : 0;
	pthread_barrier_init(&ready, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		struct worker *w = &workers[i];
		cpu_set_t set;
		pthread_attr_t attr;

		*w = (struct worker){.id = i,
		                     .lock = oversub && s->yields == 'y' ? s->lock_yield : s->lock,
		                     .unlock = s->unlock,
		                     .exclusive = s->exclusive,
		                     .steps = steps};
		pthread_attr_init(&attr);
		/* One thread per CPU: the figure is the lock's, not the scheduler's. */
		if (!oversub) {
			CPU_ZERO(&set);
			CPU_SET(i % ncpu, &set);
			pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		}
		if (pthread_create(&w->pt, &attr, worker_main, w)) {
			fprintf(stderr, "peers: pthread_create: %s\n", strerror(errno));
			exit(2);
		}
		pthread_attr_destroy(&attr);
	}
	pthread_barrier_wait(&ready);
	t0 = prev_t = now_ns();
	go = 1;
	for (;;) {
		uint64_t now, sum = 0;

		nanosleep(&ts, NULL);
		now = now_ns();
		for (int i = 0; i < n; i++)
			sum += __atomic_load_n(&workers[i].ops, __ATOMIC_RELAXED);
		if (now > prev_t && (double)(sum - prev) * 1e9 / (double)(now - prev_t) > best)
			best = (double)(sum - prev) * 1e9 / (double)(now - prev_t);
		windows++;
		prev = sum;
		prev_t = now;
		if (now - t0 >= (uint64_t)opt_ms * 1000000u)
			break;
	}
	stop_flag = 1;
	for (int i = 0; i < n; i++) {
		pthread_join(workers[i].pt, NULL);
		total += workers[i].ops;
	}
	t0 = now_ns() - t0;
	pthread_barrier_destroy(&ready);
	arch_host_yield_every = 0;
	if (s->exclusive && counter != total) {
		printf("# peers: FAIL %s: %llu acquisitions by %d threads, counter %llu\n", s->name,
		       (unsigned long long)total, n, (unsigned long long)counter);
		failures++;
		return -1;
	}
	if (oversub || windows < 2)
		return (double)total * 1e9 / (double)t0;
	return best;
}

static void throughput(const char *loop, int steps, int n, bool oversub)
{
	static double v[MAX_SUBJECTS][MAX_REPS];
	static bool bad[MAX_SUBJECTS];
	char attrs[128];

	memset(bad, 0, sizeof(bad));
	for (int r = 0; r < opt_treps; r++)
		for (int i = 0; i < nsubjects; i++) {
			const struct subject *s = &subjects[i];

			if (oversub && !s->yields)
				continue;
			if (bad[i])
				continue;
			v[i][r] = run_threads(s, n, steps, oversub);
			bad[i] = v[i][r] < 0;
		}
	for (int i = 0; i < nsubjects; i++) {
		const struct subject *s = &subjects[i];

		if (bad[i])
			continue;
		if (oversub && !s->yields) {
			printf("# peers: %s not run oversubscribed: its waiters cannot yield\n",
			       s->name);
			continue;
		}
		snprintf(attrs, sizeof(attrs), "threads=%d loop=%s work=%d mode=%s source=%s ms=%d",
		         n, loop, steps, oversub ? "oversub-yield" : "spin", s->source, opt_ms);
		print_metric(s->name, "throughput", v[i], opt_treps, "ops/s", attrs);
	}
	fflush(stdout);
}

/* ---- main ------------------------------------------------------------------- */

static int int_opt(const char *arg, const char *name, int lo, int hi)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (!*arg || *end || v < lo || v > hi) {
		fprintf(stderr, "peers: %s wants an integer in %d..%d, not '%s'\n", name, lo, hi,
		        arg);
		exit(2);
	}
	return (int)v;
}

/* The host's load average: the figures of a shared host are read with it. */
static void print_load(const char *when)
{
	double avg[3];

	if (getloadavg(avg, 3) == 3)
		printf("# peers: load average at %s: %.2f %.2f %.2f (%d CPUs)\n", when, avg[0],
		       avg[1], avg[2], ncpu);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: peers [--reps=N] [--iters=N] [--treps=N] [--ms=N] [--threads=N]\n"
	           "             [--work=N] [--oversub=T] [--only=SUBSTR] [--no-throughput]\n"
	           "             [--include-broken] [--list]\n");
}

int main(int argc, char **argv)
{
	bool list = false;

	ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	opt_threads = ncpu;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '=');
		const char *v = eq ? eq + 1 : "";

		if (!strncmp(a, "--reps=", 7))
			opt_reps = int_opt(v, "--reps", 1, MAX_REPS);
		else if (!strncmp(a, "--treps=", 8))
			opt_treps = int_opt(v, "--treps", 1, MAX_REPS);
		else if (!strncmp(a, "--iters=", 8))
			opt_iters = int_opt(v, "--iters", 100, 100000000);
		else if (!strncmp(a, "--ms=", 5))
			opt_ms = int_opt(v, "--ms", 1, 60000);
		else if (!strncmp(a, "--threads=", 10))
			opt_threads = int_opt(v, "--threads", 2, MAX_THREADS);
		else if (!strncmp(a, "--work=", 7))
			opt_work = int_opt(v, "--work", 0, 100000);
		else if (!strncmp(a, "--oversub=", 10))
			opt_oversub = int_opt(v, "--oversub", 0, MAX_THREADS);
		else if (!strncmp(a, "--only=", 7) && *v)
			opt_only = v;
		else if (!strcmp(a, "--no-throughput"))
			opt_no_throughput = true;
		else if (!strcmp(a, "--include-broken"))
			opt_broken = true;
		else if (!strcmp(a, "--list"))
			list = true;
		else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "peers: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (opt_oversub && opt_oversub <= ncpu) {
		fprintf(stderr, "peers: --oversub=%d is not more threads than the %d CPUs\n",
		        opt_oversub, ncpu);
		return 2;
	}
	collect();
	lock_mem = aligned_alloc(64, lock_size);
	if (!lock_mem) {
		fprintf(stderr, "peers: no memory for a %zu-byte lock\n", lock_size);
		return 2;
	}
	if (!nsubjects) {
		fprintf(stderr, "peers: no subject matches --only=%s\n", opt_only ? opt_only : "");
		return 2;
	}
	if (list) {
		for (int i = 0; i < nsubjects; i++)
			printf("%s %s\n", subjects[i].name, subjects[i].source);
		return 0;
	}
	arch_host_set_num_cpus(1);
	arch_host_set_cpu(0);
	print_load("start");
	printf("# peers: %d subjects, %d host CPUs, %d reps of %ld iterations uncontended, %d reps "
	       "of %d ms per throughput point, work=%d\n",
	       nsubjects, ncpu, opt_reps, opt_iters, opt_treps, opt_ms, opt_work);
	{
		/* the uncontended loop runs on one CPU: the figure must not include a migration */
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	uncontended("tight", 0);
	if (opt_work)
		uncontended("work", opt_work);
	if (!opt_no_throughput) {
		cpu_set_t all;

		CPU_ZERO(&all);
		for (int c = 0; c < ncpu; c++)
			CPU_SET(c, &all);
		sched_setaffinity(0, sizeof(all), &all);
		int top = opt_threads < ncpu ? opt_threads : ncpu;

		/* 2, 4, 8, ... and the top: every count would take minutes on a big host. */
		for (int n = 2; n <= top; n = n * 2 > top && n < top ? top : n * 2) {
			throughput("tight", 0, n, false);
			if (opt_work)
				throughput("work", opt_work, n, false);
		}
		if (opt_oversub)
			throughput("tight", 0, opt_oversub, true);
	}
	print_load("end");
	printf("# peers: end failures=%d\n", failures);
	return failures ? 1 : 0;
}
