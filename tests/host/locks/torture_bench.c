/*
 * --bench: what each lock costs on the host, the peer of the same
 * algorithms measured on bare metal.  It is run from the plain -O2 build,
 * where the figures mean something, and it times the very locks that the
 * tests torture, so that a figure here and a torture line there are about
 * the same code: every registered lock type (kernel/lock/registry.h) but
 * the broken ones, by its registered name, then the seqlock's sides and the
 * multi-lock protocols.
 */
#define _GNU_SOURCE
#include "torture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- benchmark ---------------------------------------------------------- */

struct bench_ops {
	const char *name;
	void (*lock)(struct thr *t);
	void (*unlock)(struct thr *t);
	bool exclusive; /* the critical section updates a shared counter */
	/* Registered types (filled in by bench_main): the type, its reader side, a spin threshold.
	 */
	const struct lock_type *type;
	bool read;
	unsigned int threshold; /* 0: the type's own */
	char buf[64];
};

static uint64_t bench_counter;
static DEFINE_SPINLOCK(BM_global);
static spinlock_t BM[ML_LOCKS];
static __thread spinlock_t *bm_set[8];
static int bm_k = 4;

/* The registered type being timed (every one but the broken, no list here). */
static const struct lock_type *bty;
static void *binst;

static void bl_type(struct thr *t)
{
	(void)t;
	bty->lock(binst);
}
static void bu_type(struct thr *t)
{
	(void)t;
	bty->unlock(binst);
}
static void bl_type_read(struct thr *t)
{
	(void)t;
	bty->read_lock(binst);
}
static void bu_type_read(struct thr *t)
{
	(void)t;
	bty->read_unlock(binst);
}
static void bl_sw(struct thr *t)
{
	(void)t;
	write_seqlock(&SQ);
}
static void bu_sw(struct thr *t)
{
	(void)t;
	write_sequnlock(&SQ);
}

static void bl_sr(struct thr *t)
{
	unsigned int s;

	do {
		s = read_seqbegin(&SQ);
		t->reads += __atomic_load_n(&sq_a, __ATOMIC_RELAXED);
	} while (read_seqretry(&SQ, s));
}

static void bu_sr(struct thr *t)
{
	(void)t;
}

static void bm_pick(struct thr *t)
{
	/* distinct locks, so that both protocols take the same sets */
	uint32_t seen = 0;

	for (int i = 0; i < bm_k; i++) {
		int j = (int)(rnd(t) % ML_LOCKS);

		while (seen & (1u << j))
			j = (j + 1) % ML_LOCKS;
		seen |= 1u << j;
		bm_set[i] = &BM[j];
	}
}

static void bl_msort(struct thr *t)
{
	bm_pick(t);
	multi_lock_sorted(bm_set, bm_k);
}
static void bu_msort(struct thr *t)
{
	(void)t;
	multi_unlock_sorted(bm_set, bm_k);
}
static void bl_mglob(struct thr *t)
{
	bm_pick(t);
	multi_lock_global(&BM_global, bm_set, bm_k);
}
static void bu_mglob(struct thr *t)
{
	(void)t;
	multi_unlock_global(bm_set, bm_k);
}

/* What is not a lock type of its own: the seqlock's two sides, the multi-lock protocols. */
static const struct bench_ops extra_ops[] = {
    {.name = "seqlock_write", .lock = bl_sw, .unlock = bu_sw, .exclusive = true},
    {.name = "seqlock_read", .lock = bl_sr, .unlock = bu_sr, .exclusive = false},
    {.name = "multi_sorted", .lock = bl_msort, .unlock = bu_msort, .exclusive = false},
    {.name = "multi_global", .lock = bl_mglob, .unlock = bu_mglob, .exclusive = false},
};

#define MAX_BENCH 96
static struct bench_ops bench_ops[MAX_BENCH];
static int nbench;

static void add_type(const struct lock_type *t, const char *suffix, bool read, unsigned threshold)
{
	struct bench_ops *b = &bench_ops[nbench++];

	snprintf(b->buf, sizeof(b->buf), "%s%s", t->name, suffix);
	b->name = b->buf;
	b->lock = read ? bl_type_read : bl_type;
	b->unlock = read ? bu_type_read : bu_type;
	b->exclusive = !read;
	b->type = t;
	b->read = read;
	b->threshold = threshold;
}

/*
 * Every registered type but the broken ones: reader-writer types as
 * <type>_read and <type>_write, PV types also as <type>_t256 (spin
 * threshold 256); then the extras.
 */
static void collect(void)
{
	const struct lock_type *t;

	for_each_lock_type(t, pp) {
		if (nbench > MAX_BENCH - 3 - (int)(sizeof(extra_ops) / sizeof(extra_ops[0])))
			break;
		if (t->props & LOCK_PROP_BROKEN)
			continue;
		if (t->props & LOCK_PROP_RW) {
			add_type(t, "_read", true, 0);
			add_type(t, "_write", false, 0);
			continue;
		}
		add_type(t, "", false, 0);
		if ((t->props & LOCK_PROP_PV) && t->spin_threshold)
			add_type(t, "_t256", false, 256);
	}
	for (size_t i = 0; i < sizeof(extra_ops) / sizeof(extra_ops[0]); i++)
		bench_ops[nbench++] = extra_ops[i];
}

/* Make b the one timed: a fresh instance of its type, its threshold set. */
static unsigned int bsaved;
static void select_ops(const struct bench_ops *b)
{
	size_t size;

	if (!b->type)
		return;
	bty = b->type;
	size = (bty->size + LOCK_CACHELINE - 1) / LOCK_CACHELINE * LOCK_CACHELINE;
	binst = aligned_alloc(LOCK_CACHELINE, size ? size : LOCK_CACHELINE);
	if (!binst) {
		perror("aligned_alloc");
		exit(1);
	}
	memset(binst, 0, size);
	bty->init(binst, bty->name);
	if (b->threshold)
		bsaved = bty->spin_threshold(b->threshold);
}
static void deselect_ops(const struct bench_ops *b)
{
	if (!b->type)
		return;
	if (b->threshold)
		bty->spin_threshold(bsaved);
	free(binst);
	binst = NULL;
}

static const struct bench_ops *bcur;

static void bench_worker(struct thr *t)
{
	while (running()) {
		for (int i = 0; i < 64; i++) {
			bcur->lock(t);
			if (bcur->exclusive)
				bench_counter++;
			else
				t->writes++;
			bcur->unlock(t);
		}
		t->ops += 64;
	}
}

static double uncontended_ns(const struct bench_ops *b)
{
	struct thr t = {.id = 0, .rng = 12345};
	double best = 1e30;
	const int iters = 200000;

	for (int rep = 0; rep < 5; rep++) {
		uint64_t t0 = arch_now_ns();

		for (int i = 0; i < iters; i++) {
			b->lock(&t);
			bench_counter++;
			b->unlock(&t);
		}
		__asm__ __volatile__("" ::: "memory");
		double ns = (double)(arch_now_ns() - t0) / iters;

		best = ns < best ? ns : best;
	}
	return best;
}

/*
 * Break latency: CPU 0 holds a breakable lock for long sections (64 steps),
 * the others take it now and then and record how long they waited.  Run on
 * no more threads than host CPUs, so that the wait measures the lock, not
 * the host scheduler.
 */
static int brkb_mode; /* 0 none, 1 need_lockbreak, 2 contended */

static void brk_bench_worker(struct thr *t)
{
	while (running()) {
		if (t->id == 0) {
			brk_lock(&B_a);
			for (int k = 0; k < 64; k++) {
				delay(200); /* one step of a long critical section */
				if (brkb_mode == 1)
					cond_resched_lock(&B_a);
				else if (brkb_mode == 2)
					cond_resched_lock_contended(&B_a);
			}
			brk_unlock(&B_a);
			t->ops++;
		} else {
			uint64_t t0 = arch_now_ns(), w;

			brk_lock(&B_a);
			w = arch_now_ns() - t0;
			brk_unlock(&B_a);
			t->wait_sum_ns += w;
			t->waits++;
			t->wait_max_ns = w > t->wait_max_ns ? w : t->wait_max_ns;
			sleep_ms(1);
		}
	}
}

int bench_main(void)
{
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	static const char *const mode_name[] = {"none", "lockbreak", "contended"};

	arch_host_yield_every = yield_every > 0 ? (unsigned int)yield_every : 0;

	arch_host_set_num_cpus(1);
	arch_host_set_cpu(0);
	for (int j = 0; j < ML_LOCKS; j++)
		spin_lock_init(&BM[j]);
	printf("# host lock benchmark: %d threads max, %d ms per point, %d host CPUs\n", nthreads,
	       run_ms, ncpu);
	collect();
	for (int i = 0; i < nbench; i++) {
		const struct bench_ops *b = &bench_ops[i];
		const char *extra = !strncmp(b->name, "multi", 5) ? " k=4" : "";

		select_ops(b);
		printf("# metric: host.lock.%s.uncontended_ns %.1f ns host_cpus=%d%s\n", b->name,
		       uncontended_ns(b), ncpu, extra);
		deselect_ops(b);
		fflush(stdout);
	}
	for (int i = 0; i < nbench; i++) {
		const struct bench_ops *b = &bench_ops[i];
		const char *extra = !strncmp(b->name, "multi", 5) ? " k=4" : "";

		bcur = b;
		select_ops(b);
		for (int n = 1; n <= nthreads; n++) {
			struct totals w;

			run_threads(n, bench_worker, run_ms);
			w = sum_of(n, offsetof(struct thr, ops));
			printf(
			    "# metric: host.lock.%s.throughput %.0f ops/s threads=%d host_cpus=%d "
			    "max_min=%llu/%llu%s\n",
			    b->name, (double)w.total * 1000.0 / run_ms, n, ncpu,
			    (unsigned long long)w.max, (unsigned long long)w.min, extra);
			fflush(stdout);
		}
		deselect_ops(b);
	}
	for (brkb_mode = 0; brkb_mode < 3; brkb_mode++) {
		uint64_t mx = 0, sum = 0, cnt = 0;
		int n = nthreads < ncpu ? nthreads : ncpu;

		if (n < 2)
			n = 2;
		brk_lock_init(&B_a);
		run_threads(n, brk_bench_worker, run_ms);
		for (int i = 1; i < n; i++) {
			mx = thr[i].wait_max_ns > mx ? thr[i].wait_max_ns : mx;
			sum += thr[i].wait_sum_ns;
			cnt += thr[i].waits;
		}
		printf("# metric: host.lock.brk.wait_max_ns %llu ns mode=%s threads=%d\n",
		       (unsigned long long)mx, mode_name[brkb_mode], n);
		printf("# metric: host.lock.brk.wait_avg_ns %llu ns mode=%s threads=%d\n",
		       (unsigned long long)(cnt ? sum / cnt : 0), mode_name[brkb_mode], n);
		fflush(stdout);
	}
	return 0;
}
