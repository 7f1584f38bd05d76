/*
 * The queued spinlock's own host tests (the per-type tortures of qspinlock,
 * pvqspinlock and qspinlock_broken come from the registry, torture_excl.c):
 *   qspinlock_paths            the exclusion torture with the pending bit and
 *                              the queue counted: both must be taken;
 *   pvqspinlock_no_lost_kicks  threshold lowered to 64 spins: queue heads halt
 *                              on the lock word and are kicked, and the
 *                              lost-kick audit counts zero;
 *   pvqspinlock_lost_kick_caught  the same with unlock dropping the sleeping
 *                              head's kick: the audit must count it (XFAIL);
 *   qspinlock_broken_caught_tsan  the deliberately broken qspinlock must be
 *                              caught in this (ThreadSanitizer) build too.
 *
 * The broken lock runs in this process, under ThreadSanitizer too: its
 * worker keeps the shared counter with relaxed atomic loads and stores (a
 * read, a pause, a write back), so lost updates still show in the count
 * while TSan, which would stop the suite at the first data race, has none
 * to report.
 */
#define _GNU_SOURCE
#include "pvqspinlock.h"
#include "torture.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct qspinlock Q = QSPINLOCK_INIT("qspinlock");
static struct pvqspinlock PVQ = PVQSPINLOCK_INIT("pvqspinlock");

static void q_l(void)
{
	qspin_lock(&Q);
}
static void q_u(void)
{
	qspin_unlock(&Q);
}
static void pvq_l(void)
{
	pvq_lock(&PVQ);
}
static void pvq_u(void)
{
	pvq_unlock(&PVQ);
}

static const struct excl_ops ops_q = {"qspinlock", q_l, q_u};
static const struct excl_ops ops_pvq = {"pvqspinlock", pvq_l, pvq_u};

static struct result t_qspinlock(void)
{
	struct qspin_stats st;
	uint64_t fail;

	qspin_stats_reset();
	fail = excl_run(&ops_q, run_ms, true);
	qspin_stats_get(&st);
	printf("# qspinlock: pending=%llu queued=%llu waited=%llu nested=%llu overflow=%llu\n",
	       (unsigned long long)st.pending, (unsigned long long)st.queued,
	       (unsigned long long)st.waited, (unsigned long long)st.nested,
	       (unsigned long long)st.overflow);
	if (fail)
		return verdict(FAIL, "%llu exclusion failures", (unsigned long long)fail);
	if (!SUM(ops).min)
		return verdict(FAIL, "a thread never got the lock");
	if (nthreads >= 2 && !st.pending)
		return verdict(FAIL, "the pending path was never taken");
	if (nthreads >= 3 && !st.waited)
		return verdict(FAIL, "no waiter ever queued behind another");
	if (qspin_is_locked(&Q) || !qspin_trylock(&Q))
		return verdict(FAIL, "the idle lock reads locked or cannot be taken");
	if (qspin_is_contended(&Q))
		return verdict(FAIL, "qspin_is_contended() true with one holder");
	qspin_unlock(&Q);
	return passed();
}

/* Threshold lowered so that queued waiters and the queue head halt and are kicked. */
#define PVQ_TEST_THRESHOLD 64

static struct result t_pvqspinlock(void)
{
	unsigned int saved = pvq_spin_threshold;
	struct pvq_stats st;
	uint64_t fail;

	pvq_stats_reset();
	pvq_spin_threshold = PVQ_TEST_THRESHOLD;
	fail = excl_run(&ops_pvq, run_ms, true);
	pvq_spin_threshold = saved;
	pvq_stats_get(&st);
	printf("# pvqspinlock: queued=%llu halts_queue=%llu halts_head=%llu preempted=%llu "
	       "kicks_queue=%llu kicks_head=%llu steals=%llu lost_kicks=%llu\n",
	       (unsigned long long)st.queued, (unsigned long long)st.halts_queue,
	       (unsigned long long)st.halts_head, (unsigned long long)st.preempted,
	       (unsigned long long)st.kicks_queue, (unsigned long long)st.kicks_head,
	       (unsigned long long)st.steals, (unsigned long long)st.lost_kicks);
	if (fail)
		return verdict(FAIL, "%llu exclusion failures", (unsigned long long)fail);
	if (st.lost_kicks)
		return verdict(FAIL, "%llu sleepers were passed the lock without a kick",
		               (unsigned long long)st.lost_kicks);
	if (!SUM(ops).min)
		return verdict(FAIL, "a thread never got the lock");
	if (nthreads >= 3 && (!st.halts_head || !st.kicks_head))
		return verdict(FAIL, "the queue head never halted on the lock word and was kicked");
	if (pvq_is_locked(&PVQ) || !pvq_trylock(&PVQ))
		return verdict(FAIL, "the idle lock reads locked or cannot be taken");
	pvq_unlock(&PVQ);
	return passed();
}

/* The audit must be able to fail: with unlock dropping the head's kick it must count. */
static struct result t_pvq_lose_kicks(void)
{
	unsigned int saved = pvq_spin_threshold;
	struct pvq_stats st = {0};
	uint64_t fail = 0;
	int run = 0;

	if (nthreads < 2)
		return verdict(SKIP, "one thread never waits");
	pvq_stats_reset();
	pvq_spin_threshold = PVQ_TEST_THRESHOLD;
	pvq_lose_kicks = true;
	while (run < 5 && !st.lost_kicks && !fail) {
		fail = excl_run(&ops_pvq, run_ms / 2, true);
		run++;
		pvq_stats_get(&st);
	}
	pvq_lose_kicks = false;
	pvq_spin_threshold = saved;
	if (fail)
		return verdict(FAIL, "%llu exclusion failures", (unsigned long long)fail);
	if (st.lost_kicks)
		return verdict(XFAIL,
		               "unlock dropping the sleeping head's kick: %llu lost kicks "
		               "counted in %d run(s)",
		               (unsigned long long)st.lost_kicks, run);
	return verdict(FAIL, "kicks dropped, yet the audit counted none in %d runs", run);
}

/* ---- the deliberately broken qspinlock ------------------------------------ */

#define BROKEN_RUNS 10
#define BROKEN_MS 250

static struct qspinlock QB;
static struct {
	uint64_t counter; /* relaxed loads and stores: a lost update, not a data race */
	uint32_t inside;
	uint64_t overlaps;
} B;

static void broken_worker(struct thr *t)
{
	while (running()) {
		uint64_t c;

		qspin_broken_lock(&QB);
		if (__atomic_exchange_n(&B.inside, 1, __ATOMIC_RELAXED))
			__atomic_fetch_add(&B.overlaps, 1, __ATOMIC_RELAXED);
		c = __atomic_load_n(&B.counter, __ATOMIC_RELAXED);
		delay(rnd(t) & 7);
		__atomic_store_n(&B.counter, c + 1, __ATOMIC_RELAXED);
		__atomic_store_n(&B.inside, 0, __ATOMIC_RELAXED);
		qspin_broken_unlock(&QB);
		t->ops++;
		delay(rnd(t) & 15);
	}
}

/*
 * At least BROKEN_THREADS threads, whatever --threads says: the bug needs two
 * queue heads at once, and under ThreadSanitizer two threads overlap in the
 * window too seldom for a run of this length.
 */
#define BROKEN_THREADS 4

static struct result t_qspinlock_broken(void)
{
	int saved_threads = nthreads;
	unsigned int saved_yield = arch_host_yield_every;
	struct result r =
	    verdict(FAIL, "the broken qspinlock was not caught in %d runs", BROKEN_RUNS);

	if (nthreads < BROKEN_THREADS) {
		nthreads = BROKEN_THREADS;
		if (nthreads > (int)sysconf(_SC_NPROCESSORS_ONLN))
			arch_host_yield_every = 128;
	}
	for (int run = 1; run <= BROKEN_RUNS; run++) {
		struct totals w;
		uint64_t fail;

		qspin_lock_init(&QB);
		memset(&B, 0, sizeof(B));
		run_threads(nthreads, broken_worker, BROKEN_MS);
		w = SUM(ops);
		fail =
		    B.overlaps + (B.counter > w.total ? B.counter - w.total : w.total - B.counter);
		torture_line("qspinlock_broken", "Writes", w, fail);
		if (fail) {
			r = verdict(XFAIL,
			            "tail published before the node is initialised: %llu exclusion "
			            "failures caught in run %d (%d threads)",
			            (unsigned long long)fail, run, nthreads);
			break;
		}
	}
	nthreads = saved_threads;
	arch_host_yield_every = saved_yield;
	arch_host_set_num_cpus(nthreads);
	return r;
}

HOST_TEST("qspinlock_paths", t_qspinlock);
HOST_TEST("pvqspinlock_no_lost_kicks", t_pvqspinlock);
HOST_TEST("pvqspinlock_lost_kick_caught", t_pvq_lose_kicks);
HOST_TEST("qspinlock_broken_caught_tsan", t_qspinlock_broken);
