/*
 * The queued spinlock's own host tests (the per-type tortures of qspinlock,
 * pvqspinlock and qspinlock_broken come from the registry, torture_excl.c):
 *   qspinlock_paths            with this thread holding, a second contender
 *                              must set the pending bit, and one finding it
 *                              taken must queue (both seen in the word); then
 *                              the torture, where 3 or more threads must queue
 *                              behind each other;
 *   pvqspinlock_no_lost_kicks  threshold lowered to 64 spins: waiters halt and
 *                              are kicked, and the lost-kick audit counts
 *                              zero;
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

/* ---- each path on purpose: this thread holds, one other contends --------- */

static int contender_done;

static void *contender(void *p)
{
	(void)p;
	arch_host_set_cpu(1);
	qspin_lock(&Q);
	qspin_unlock(&Q);
	__atomic_store_n(&contender_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Bounded wait (2 s) for the word to satisfy want(). */
static bool word_becomes(bool (*want)(uint32_t))
{
	for (int ms = 0; ms < 2000; ms++) {
		if (want(__atomic_load_n(&Q.val, __ATOMIC_ACQUIRE)))
			return true;
		sleep_ms(1);
	}
	return false;
}

static bool is_pending(uint32_t v)
{
	return v == (QSPIN_LOCKED | QSPIN_PENDING);
}

static bool is_queued_cpu1(uint32_t v)
{
	return (v & QSPIN_TAIL_MASK) && qspin_tail_cpu(v) == 1 && qspin_tail_idx(v) == 0;
}

/* Hold Q, let CPU 1 contend (with the pending bit taken if @pending_taken); true if @want was seen.
 */
static bool directed(bool pending_taken, bool (*want)(uint32_t))
{
	pthread_t pt;
	bool seen;

	arch_host_set_num_cpus(2);
	qspin_lock(&Q);
	if (pending_taken)
		__atomic_fetch_or(&Q.val, QSPIN_PENDING, __ATOMIC_RELAXED);
	__atomic_store_n(&contender_done, 0, __ATOMIC_RELAXED);
	pthread_create(&pt, NULL, contender, NULL);
	seen = word_becomes(want);
	if (pending_taken)
		__atomic_fetch_and(&Q.val, ~QSPIN_PENDING, __ATOMIC_RELAXED);
	qspin_unlock(&Q);
	pthread_join(pt, NULL);
	arch_host_set_num_cpus(nthreads);
	return seen && __atomic_load_n(&contender_done, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&Q.val, __ATOMIC_RELAXED) == 0;
}

/*
 * The pending bit and the queue head, each taken on purpose and seen in the
 * word; then the torture on all threads, where (with 3 or more) waiters must
 * queue behind each other.
 */
static struct result t_qspinlock(void)
{
	struct qspin_stats st;
	uint64_t fail;

	qspin_stats_reset();
	if (!directed(false, is_pending))
		return verdict(FAIL, "a second contender did not wait on the pending bit");
	if (!directed(true, is_queued_cpu1))
		return verdict(FAIL, "a contender finding pending taken did not queue");
	qspin_stats_get(&st);
	if (!st.pending || !st.queued)
		return verdict(FAIL, "path counters: pending=%llu queued=%llu",
		               (unsigned long long)st.pending, (unsigned long long)st.queued);
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
	if (nthreads >= 3 && !st.waited)
		return verdict(FAIL, "no waiter ever queued behind another");
	if (st.overflow)
		return verdict(FAIL, "nesting overflowed LOCK_MAX_NESTING nodes");
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
	if (nthreads >= 2 &&
	    (!(st.halts_queue + st.halts_head) || !(st.kicks_queue + st.kicks_head)))
		return verdict(FAIL, "no waiter halted and was kicked: the audit judged nothing");
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
	pvq_spin_threshold = 1; /* heads halt whenever the lock is held */
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
