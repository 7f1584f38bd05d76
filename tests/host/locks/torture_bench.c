/*
 * --bench: what each lock costs on the host, the peer of the same
 * algorithms measured on bare metal.  It is run from the plain -O2 build,
 * where the figures mean something, and it times the very locks that the
 * tests torture, so that a figure here and a torture line there are about
 * the same code.
 */
#define _GNU_SOURCE
#include "torture.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- benchmark ---------------------------------------------------------- */

struct bench_ops {
	const char *name;
	void (*lock)(struct thr *t);
	void (*unlock)(struct thr *t);
	bool exclusive; /* the critical section updates a shared counter */
};

static uint64_t bench_counter;
static DEFINE_SPINLOCK(BM_global);
static spinlock_t BM[ML_LOCKS];
static __thread spinlock_t *bm_set[8];
static int bm_k = 4;

static void bl_tas(struct thr *t)
{
	(void)t;
	tas_lock(&L_tas);
}
static void bu_tas(struct thr *t)
{
	(void)t;
	tas_unlock(&L_tas);
}
static void bl_ticket(struct thr *t)
{
	(void)t;
	ticket_lock(&L_ticket);
}
static void bu_ticket(struct thr *t)
{
	(void)t;
	ticket_unlock(&L_ticket);
}
static void bl_spin(struct thr *t)
{
	(void)t;
	spin_lock(&L_spin);
}
static void bu_spin(struct thr *t)
{
	(void)t;
	spin_unlock(&L_spin);
}
static void bl_brk(struct thr *t)
{
	(void)t;
	brk_lock(&L_brk);
}
static void bu_brk(struct thr *t)
{
	(void)t;
	brk_unlock(&L_brk);
}
static void bl_pv(struct thr *t)
{
	(void)t;
	pv_lock(&L_pv);
}
static void bl_pv256(struct thr *t)
{
	(void)t;
	pv_spin_threshold = 256;
	pv_lock(&L_pv);
}
static void bu_pv(struct thr *t)
{
	(void)t;
	pv_unlock(&L_pv);
}
static void bu_pv256(struct thr *t)
{
	(void)t;
	pv_unlock(&L_pv);
	pv_spin_threshold = PV_SPIN_THRESHOLD;
}
static void bl_mcs(struct thr *t)
{
	(void)t;
	mcs_spin_lock(&L_mcs);
}
static void bu_mcs(struct thr *t)
{
	(void)t;
	mcs_spin_unlock(&L_mcs);
}
static void bl_rr(struct thr *t)
{
	(void)t;
	read_lock(&RW);
}
static void bu_rr(struct thr *t)
{
	(void)t;
	read_unlock(&RW);
}
static void bl_rw(struct thr *t)
{
	(void)t;
	write_lock(&RW);
}
static void bu_rw(struct thr *t)
{
	(void)t;
	write_unlock(&RW);
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

static const struct bench_ops bench_ops[] = {
    {"tas", bl_tas, bu_tas, true},
    {"ticket", bl_ticket, bu_ticket, true},
    {"spin_lock", bl_spin, bu_spin, true},
    {"brk", bl_brk, bu_brk, true},
    {"pvticket", bl_pv, bu_pv, true},
    {"pvticket_t256", bl_pv256, bu_pv256, true}, /* threshold 256 spins */
    {"mcs", bl_mcs, bu_mcs, true},
    {"rwlock_read", bl_rr, bu_rr, false},
    {"rwlock_write", bl_rw, bu_rw, true},
    {"seqlock_write", bl_sw, bu_sw, true},
    {"seqlock_read", bl_sr, bu_sr, false},
    {"multi_sorted", bl_msort, bu_msort, false},
    {"multi_global", bl_mglob, bu_mglob, false},
};

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
	for (size_t i = 0; i < sizeof(bench_ops) / sizeof(bench_ops[0]); i++) {
		const struct bench_ops *b = &bench_ops[i];
		const char *extra = !strncmp(b->name, "multi", 5) ? " k=4" : "";

		printf("# metric: host.lock.%s.uncontended_ns %.1f ns host_cpus=%d%s\n", b->name,
		       uncontended_ns(b), ncpu, extra);
		fflush(stdout);
	}
	for (size_t i = 0; i < sizeof(bench_ops) / sizeof(bench_ops[0]); i++) {
		const struct bench_ops *b = &bench_ops[i];
		const char *extra = !strncmp(b->name, "multi", 5) ? " k=4" : "";

		bcur = b;
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
