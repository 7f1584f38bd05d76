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
 *        locktorture --child=recursion|timeout|broken   (used by the suite)
 *
 * The suite prints KTAP (locktorture's statistics lines as diagnostics) and
 * exits 0 when every test passed.  What it checks:
 *   *_torture        N threads hammer one lock; a plain counter updated inside
 *                    must equal the number of acquisitions, and an occupancy
 *                    probe must never see two holders (Fail counts both).
 *   lockstat_ticket  LOCK_STAT saw every acquisition of the ticket run.
 *   brk_*_lost_zero  nested breakable locks with cond_resched_lock() (and the
 *                    contended variant): counts add up, breaks happen, and the
 *                    audit counts 0 lost break requests.
 *   brk_legacy_...   the 2.6 clearing-flag protocol: lost requests must be
 *                    caught (XFAIL).
 *   pvticket         threshold lowered to 64 spins: counts add up, and the
 *                    halt/kick slow path really ran.
 *   mcs              per-CPU nodes, caller nodes, nesting, out-of-order release.
 *   rwlock           readers see the two fields a writer keeps equal; a waiting
 *                    writer refuses new readers and goes before a later reader.
 *   seqlock          readers never accept a torn pair; every write counted.
 *   multi_*          random overlapping sets of 16 locks, sorted (with
 *                    repeats) or global-first, mixed with single-lock users.
 *   debug_*          child processes must panic on recursion and on a spin
 *                    timeout, naming the lock, the holder, both backtraces.
 *   broken_lock_caught  the non-atomic ticket lock (non-TSan child) must be
 *                    caught with wrong counts in one of 10 runs (XFAIL).
 * When threads outnumber host CPUs, spinners yield every 128 spins so that
 * FIFO locks make progress (--yield=0 turns that off).
 */
#define _GNU_SOURCE
#include "broken.h"
#include "spinlock.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 16

static int nthreads = 4;
static int run_ms = 400;
static const char *plain_bin;
static int yield_every = -1; /* -1: auto */

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

static int g_stop;
static pthread_barrier_t g_barrier;
static struct thr thr[MAX_THREADS];

static bool running(void)
{
	return !__atomic_load_n(&g_stop, __ATOMIC_RELAXED);
}

static unsigned int rnd(struct thr *t)
{
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 17;
	t->rng ^= t->rng << 5;
	return t->rng;
}

static void delay(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		cpu_relax();
}

static void *thread_main(void *p)
{
	struct thr *t = p;

	arch_host_set_cpu(t->id);
	pthread_barrier_wait(&g_barrier);
	t->fn(t);
	return NULL;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000l};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Run @fn on @n threads (CPUs 0..n-1) for @ms milliseconds. */
static void run_threads(int n, void (*fn)(struct thr *), int ms)
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

struct totals {
	uint64_t total, max, min;
};

static struct totals sum_of(int n, size_t off)
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

#define SUM(field) sum_of(nthreads, offsetof(struct thr, field))

/* locktorture's statistics line, as a KTAP diagnostic. */
static void torture_line(const char *lock, const char *kind, struct totals t, uint64_t fail)
{
	printf("# %s-torture: %s:  Total: %llu  Max/Min: %llu/%llu %s  Fail: %llu %s\n", lock, kind,
	       (unsigned long long)t.total, (unsigned long long)t.max, (unsigned long long)t.min,
	       t.max > 2 * t.min ? "???" : "", (unsigned long long)fail, fail ? "!!!" : "");
	fflush(stdout);
}

enum verdict { PASS, FAIL, XFAIL, SKIP };

struct result {
	enum verdict v;
	char why[160];
};

static struct result verdict(enum verdict v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static struct result verdict(enum verdict v, const char *fmt, ...)
{
	struct result r = {v, ""};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r.why, sizeof(r.why), fmt, ap);
	va_end(ap);
	return r;
}

static struct result passed(void)
{
	return (struct result){PASS, ""};
}

/* ---- mutual exclusion, one lock ---------------------------------------- */

struct excl_ops {
	const char *name;
	void (*lock)(void);
	void (*unlock)(void);
};

static struct {
	uint64_t counter; /* plain accesses only, under the lock */
	uint32_t inside;  /* occupancy probe */
	uint64_t overlaps;
} X;

static const struct excl_ops *cur;

static void excl_worker(struct thr *t)
{
	while (running()) {
		uint64_t c;

		cur->lock();
		if (__atomic_exchange_n(&X.inside, 1, __ATOMIC_RELAXED))
			__atomic_fetch_add(&X.overlaps, 1, __ATOMIC_RELAXED);
		c = *(volatile uint64_t *)&X.counter;
		delay(rnd(t) & 7);
		*(volatile uint64_t *)&X.counter = c + 1;
		__atomic_store_n(&X.inside, 0, __ATOMIC_RELAXED);
		cur->unlock();
		t->ops++;
		delay(rnd(t) & 15);
	}
}

/* Runs one exclusion torture; returns the number of failures. */
static uint64_t excl_run(const struct excl_ops *ops, int ms, bool print)
{
	struct totals w;
	uint64_t fail;

	memset(&X, 0, sizeof(X));
	cur = ops;
	run_threads(nthreads, excl_worker, ms);
	w = SUM(ops);
	fail = X.overlaps + (X.counter > w.total ? X.counter - w.total : w.total - X.counter);
	if (print)
		torture_line(ops->name, "Writes", w, fail);
	return fail;
}

static struct tas_lock L_tas = TAS_LOCK_INIT("tas");
static struct ticket_lock L_ticket = TICKET_LOCK_INIT("ticket");
static struct pv_lock L_pv = PV_LOCK_INIT("pvticket");
static struct mcs_lock L_mcs = MCS_LOCK_INIT("mcs");
static struct brk_lock L_brk = BRK_LOCK_INIT("brk");
static struct broken_lock L_broken = BROKEN_LOCK_INIT;
static DEFINE_SPINLOCK(L_spin);
static __thread unsigned long spin_flags;
static __thread bool spin_tried;
static __thread unsigned int spin_n;

static void tas_l(void)
{
	tas_lock(&L_tas);
}
static void tas_u(void)
{
	tas_unlock(&L_tas);
}
static void ticket_l(void)
{
	ticket_lock(&L_ticket);
}
static void ticket_u(void)
{
	ticket_unlock(&L_ticket);
}
static void pv_l(void)
{
	pv_lock(&L_pv);
}
static void pv_u(void)
{
	pv_unlock(&L_pv);
}
static void mcs_l(void)
{
	mcs_spin_lock(&L_mcs);
}
static void mcs_u(void)
{
	mcs_spin_unlock(&L_mcs);
}
static void brk_l(void)
{
	brk_lock(&L_brk);
}
static void brk_u(void)
{
	brk_unlock(&L_brk);
}
static void broken_l(void)
{
	broken_lock(&L_broken);
}
static void broken_u(void)
{
	broken_unlock(&L_broken);
}

/* spinlock_t through all its entry points: trylock, irqsave, plain. */
static void spin_l(void)
{
	spin_tried = (++spin_n % 3 == 0) && spin_trylock(&L_spin);
	if (spin_tried)
		return;
	if (spin_n & 1)
		spin_lock_irqsave(&L_spin, spin_flags);
	else
		spin_lock(&L_spin);
}

static void spin_u(void)
{
	if (!spin_tried && (spin_n & 1))
		spin_unlock_irqrestore(&L_spin, spin_flags);
	else
		spin_unlock(&L_spin);
}

static const struct excl_ops ops_tas = {"tas", tas_l, tas_u};
static const struct excl_ops ops_ticket = {"ticket", ticket_l, ticket_u};
static const struct excl_ops ops_pv = {"pvticket", pv_l, pv_u};
static const struct excl_ops ops_mcs = {"mcs", mcs_l, mcs_u};
static const struct excl_ops ops_brk = {"brk", brk_l, brk_u};
static const struct excl_ops ops_spin = {"spin_lock", spin_l, spin_u};
static const struct excl_ops ops_broken = {"broken", broken_l, broken_u};

static struct result excl_test(const struct excl_ops *ops)
{
	uint64_t fail = excl_run(ops, run_ms, true);

	if (fail)
		return verdict(FAIL, "%llu exclusion failures", (unsigned long long)fail);
	if (!SUM(ops).min)
		return verdict(FAIL, "a thread never got the lock");
	return passed();
}

static struct result t_tas(void)
{
	return excl_test(&ops_tas);
}
static struct result t_spin(void)
{
	return excl_test(&ops_spin);
}
static struct result t_brk(void)
{
	return excl_test(&ops_brk);
}

static struct result t_ticket(void)
{
	struct result r = excl_test(&ops_ticket);

	if (r.v == PASS && !ticket_is_locked(&L_ticket) && ticket_trylock(&L_ticket)) {
		bool contended = ticket_is_contended(&L_ticket);

		ticket_unlock(&L_ticket);
		if (contended)
			return verdict(FAIL, "ticket_is_contended() true with one holder");
	}
	return r;
}

/* LOCK_STAT of the ticket lock, which t_ticket just tortured. */
static struct result t_lockstat(void)
{
#ifdef LOCK_STAT
	const struct lock_stat *s = &L_ticket.meta.stat;
	struct totals w = SUM(ops);
	uint64_t hist = 0;

	lock_stat_print("ticket", s);
	for (int b = 0; b < LOCK_STAT_BUCKETS; b++)
		hist += s->hold_hist[b];
	/* +1: the trylock probe at the end of t_ticket */
	if (s->acquisitions != w.total + 1 || hist != s->acquisitions)
		return verdict(FAIL, "acquisitions %llu, expected %llu, hold samples %llu",
		               (unsigned long long)s->acquisitions, (unsigned long long)w.total + 1,
		               (unsigned long long)hist);
	if (!s->contentions || !s->wait_ns_max)
		return verdict(FAIL, "no contention recorded");
	return passed();
#else
	return verdict(SKIP, "built without LOCK_STAT");
#endif
}

/* ---- pvticket: the slow path must really run --------------------------- */

static struct result t_pvticket(void)
{
	struct pv_stats ps;
	struct arch_host_stats hs;
	unsigned int saved = pv_spin_threshold;
	uint64_t fail;

	pv_spin_threshold = 64; /* halt early, so that halts and kicks happen */
	pv_stats_reset();
	arch_host_reset_stats();
	fail = excl_run(&ops_pv, run_ms, true);
	pv_spin_threshold = saved;
	pv_stats_get(&ps);
	arch_host_get_stats(&hs);
	printf("# pvticket: threshold=64 slowpath=%llu halts=%llu kicks=%llu flag_clears=%llu "
	       "futex_sleeps=%llu sleep_timeouts=%llu\n",
	       (unsigned long long)ps.slowpath, (unsigned long long)ps.halts,
	       (unsigned long long)ps.kicks, (unsigned long long)ps.flag_clears,
	       (unsigned long long)hs.halts, (unsigned long long)hs.halt_timeouts);
	if (fail)
		return verdict(FAIL, "%llu exclusion failures", (unsigned long long)fail);
	if (!ps.halts || !ps.kicks || !hs.halts)
		return verdict(FAIL, "slow path not exercised (halts %llu, kicks %llu)",
		               (unsigned long long)ps.halts, (unsigned long long)ps.kicks);
	if (pv_is_locked(&L_pv))
		return verdict(FAIL, "lock left held");
	return passed();
}

/* ---- mcs: per-CPU nodes, nesting, release out of order ------------------ */

static struct mcs_lock M_a = MCS_LOCK_INIT("mcs.a"), M_b = MCS_LOCK_INIT("mcs.b");
static uint64_t m_a, m_b;

static void mcs_nested_worker(struct thr *t)
{
	struct mcs_node node; /* a caller-provided node for the inner lock */

	while (running()) {
		bool own_node = rnd(t) & 1;

		mcs_spin_lock(&M_a);
		if (own_node)
			mcs_lock(&M_b, &node);
		else
			mcs_spin_lock(&M_b);
		m_a++;
		m_b++;
		delay(rnd(t) & 7);
		mcs_spin_unlock(&M_a); /* not LIFO */
		m_b++;
		if (own_node)
			mcs_unlock(&M_b, &node);
		else
			mcs_spin_unlock(&M_b);
		t->ops++;
		if (mcs_spin_trylock(&M_b)) {
			m_b++;
			t->writes++;
			mcs_spin_unlock(&M_b);
		}
	}
}

static struct result t_mcs(void)
{
	struct result r = excl_test(&ops_mcs);
	struct totals w;
	uint64_t fail;

	if (r.v != PASS)
		return r;
	m_a = m_b = 0;
	run_threads(nthreads, mcs_nested_worker, run_ms);
	w = SUM(ops);
	fail = (m_a != w.total) + (m_b != 2 * w.total + SUM(writes).total);
	torture_line("mcs_nested", "Writes", w, fail);
	if (fail)
		return verdict(FAIL, "nested counts wrong");
	if (mcs_is_locked(&M_a) || mcs_is_locked(&M_b))
		return verdict(FAIL, "lock left held");
	return passed();
}

/* ---- breakable ---------------------------------------------------------- */

static struct brk_lock B_a = BRK_LOCK_INIT("brk.a"), B_b = BRK_LOCK_INIT("brk.b");
static uint64_t b_a, b_b;
static bool brk_use_contended;

static bool brk_break(struct brk_lock *l)
{
	return brk_use_contended ? cond_resched_lock_contended(l) : cond_resched_lock(l);
}

#define BRK_STEPS 32

static void bump(uint64_t *p, struct thr *t)
{
	uint64_t v = *(volatile uint64_t *)p;

	delay(rnd(t) & 3);
	*(volatile uint64_t *)p = v + 1;
}

/*
 * Roles: 0 holds A for a long section, breaking it; 1 holds A and spins on B
 * (a request at nesting depth 2), breaking B; 2 holds B for a long section.
 * Lock order is always A then B; only the innermost held lock is broken.
 */
static void brk_worker(struct thr *t)
{
	int role = t->id % 3;

	while (running()) {
		if (role == 0) {
			brk_lock(&B_a);
			for (int k = 0; k < BRK_STEPS; k++) {
				bump(&b_a, t);
				t->expect[0]++;
				t->breaks += brk_break(&B_a);
			}
			brk_unlock(&B_a);
		} else if (role == 1) {
			brk_lock(&B_a);
			bump(&b_a, t);
			t->expect[0]++;
			brk_lock(&B_b);
			for (int k = 0; k < BRK_STEPS / 2; k++) {
				bump(&b_b, t);
				t->expect[1]++;
				t->breaks += brk_break(&B_b);
			}
			brk_unlock(&B_b);
			brk_unlock(&B_a);
		} else {
			brk_lock(&B_b);
			for (int k = 0; k < BRK_STEPS; k++) {
				bump(&b_b, t);
				t->expect[1]++;
				t->breaks += brk_break(&B_b);
			}
			brk_unlock(&B_b);
		}
		t->ops++;
	}
}

static struct result brk_break_test(bool contended)
{
	const char *name = contended ? "brk_contended" : "brk_lockbreak";
	uint64_t ea = 0, eb = 0, fail;
	uint32_t lost, checks;
	struct totals w;

	brk_lock_init(&B_a);
	brk_lock_init(&B_b);
	lock_set_name(&B_a, "brk.a");
	lock_set_name(&B_b, "brk.b");
	b_a = b_b = 0;
	brk_use_contended = contended;
	run_threads(nthreads, brk_worker, run_ms);
	for (int i = 0; i < nthreads; i++) {
		ea += thr[i].expect[0];
		eb += thr[i].expect[1];
	}
	w = SUM(ops);
	lost = brk_lost_requests(&B_a) + brk_lost_requests(&B_b);
	checks = brk_audited_checks(&B_a) + brk_audited_checks(&B_b);
	fail = (b_a != ea) + (b_b != eb);
	torture_line(name, "Writes", w, fail);
	printf("# %s: breaks=%llu audited_checks=%u lost_requests=%u\n", name,
	       (unsigned long long)SUM(breaks).total, checks, lost);
	if (fail)
		return verdict(FAIL, "counts wrong (a %llu/%llu, b %llu/%llu)",
		               (unsigned long long)b_a, (unsigned long long)ea,
		               (unsigned long long)b_b, (unsigned long long)eb);
#ifdef BRK_AUDIT
	if (lost)
		return verdict(FAIL, "%u break requests lost", lost);
	if (!checks)
		return verdict(FAIL, "audit saw no checks");
#endif
	if (!SUM(breaks).total)
		return verdict(FAIL, "no lock break under contention");
	return passed();
}

static struct result t_brk_lockbreak(void)
{
	return brk_break_test(false);
}
static struct result t_brk_contended(void)
{
	return brk_break_test(true);
}

/* The 2.6 flag protocol must be caught losing requests. */
static struct brk_legacy_lock B_legacy;
static uint64_t b_legacy;

static void brk_legacy_worker(struct thr *t)
{
	while (running()) {
		brk_legacy_lock(&B_legacy);
		for (int k = 0; k < BRK_STEPS; k++) {
			bump(&b_legacy, t);
			t->expect[0]++;
			t->breaks += brk_legacy_cond_resched_lock(&B_legacy);
		}
		brk_legacy_unlock(&B_legacy);
		t->ops++;
	}
}

static struct result t_brk_legacy(void)
{
	uint64_t e = 0;
	uint32_t lost;

	brk_legacy_init(&B_legacy);
	b_legacy = 0;
	run_threads(nthreads, brk_legacy_worker, run_ms);
	for (int i = 0; i < nthreads; i++)
		e += thr[i].expect[0];
	lost = brk_legacy_lost_requests(&B_legacy);
	torture_line("brk_legacy", "Writes", SUM(ops), b_legacy != e);
	printf("# brk_legacy: breaks=%llu audited_checks=%u lost_requests=%u\n",
	       (unsigned long long)SUM(breaks).total, B_legacy.audit.checks, lost);
	if (b_legacy != e)
		return verdict(FAIL, "counts wrong");
	if (!lost)
		return verdict(FAIL, "the clearing-flag protocol lost no request: audit too weak?");
	return verdict(XFAIL, "deliberately broken break_lock flag: %u lost requests caught", lost);
}

/* ---- rwlock ------------------------------------------------------------- */

static rwlock_t RW = RWLOCK_INIT("rw");
static struct {
	uint64_t a, b; /* the writer keeps a == b; plain accesses */
	uint32_t writer_in, readers_in;
	uint64_t fail;
} R;

static void rw_worker(struct thr *t)
{
	while (running()) {
		if (rnd(t) % 8 == 0) {
			write_lock(&RW);
			if (__atomic_exchange_n(&R.writer_in, 1, __ATOMIC_RELAXED) ||
			    __atomic_load_n(&R.readers_in, __ATOMIC_RELAXED))
				__atomic_fetch_add(&R.fail, 1, __ATOMIC_RELAXED);
			R.a++;
			delay(rnd(t) & 7);
			R.b = R.a;
			__atomic_store_n(&R.writer_in, 0, __ATOMIC_RELAXED);
			write_unlock(&RW);
			t->writes++;
		} else {
			uint64_t x, y;

			read_lock(&RW);
			__atomic_fetch_add(&R.readers_in, 1, __ATOMIC_RELAXED);
			if (__atomic_load_n(&R.writer_in, __ATOMIC_RELAXED))
				__atomic_fetch_add(&R.fail, 1, __ATOMIC_RELAXED);
			x = R.a;
			delay(rnd(t) & 7);
			y = R.b;
			if (x != y)
				__atomic_fetch_add(&R.fail, 1, __ATOMIC_RELAXED);
			__atomic_fetch_sub(&R.readers_in, 1, __ATOMIC_RELAXED);
			read_unlock(&RW);
			t->reads++;
		}
		delay(rnd(t) & 15);
	}
}

static struct result t_rwlock(void)
{
	struct totals w, r;

	memset(&R, 0, sizeof(R));
	run_threads(nthreads, rw_worker, run_ms);
	w = SUM(writes);
	r = SUM(reads);
	if (R.a != w.total)
		R.fail++;
	torture_line("rw_lock", "Writes", w, R.fail);
	torture_line("rw_lock", "Reads", r, R.fail);
	if (R.fail)
		return verdict(FAIL, "%llu failures", (unsigned long long)R.fail);
	if (!w.total || !r.total)
		return verdict(FAIL, "no writes or no reads");
	return passed();
}

/* A waiting writer must block new readers. */
static rwlock_t RWF = RWLOCK_INIT("rw.fair");
static int fair_phase, fair_order, fair_w_at, fair_r2_at;

static void fair_worker(struct thr *t)
{
	if (t->id == 0) { /* first reader */
		read_lock(&RWF);
		__atomic_store_n(&fair_phase, 1, __ATOMIC_RELEASE);
		while (__atomic_load_n(&fair_phase, __ATOMIC_ACQUIRE) != 3)
			sleep_ms(1);
		read_unlock(&RWF);
	} else if (t->id == 1) { /* writer */
		while (__atomic_load_n(&fair_phase, __ATOMIC_ACQUIRE) < 1)
			sleep_ms(1);
		write_lock(&RWF);
		__atomic_store_n(&fair_w_at, __atomic_add_fetch(&fair_order, 1, __ATOMIC_SEQ_CST),
		                 __ATOMIC_RELAXED);
		write_unlock(&RWF);
	} else if (t->id == 2) { /* late reader */
		while (__atomic_load_n(&fair_phase, __ATOMIC_ACQUIRE) < 2)
			sleep_ms(1);
		read_lock(&RWF);
		__atomic_store_n(&fair_r2_at, __atomic_add_fetch(&fair_order, 1, __ATOMIC_SEQ_CST),
		                 __ATOMIC_RELAXED);
		read_unlock(&RWF);
	}
}

static void *fair_thread(void *p)
{
	struct thr *t = p;

	arch_host_set_cpu(t->id);
	t->fn(t);
	return NULL;
}

static struct result t_rwlock_fair(void)
{
	bool waiting = false, try_failed;
	int i;

	rwlock_init(&RWF);
	fair_phase = fair_order = fair_w_at = fair_r2_at = 0;
	arch_host_set_num_cpus(4);
	for (i = 0; i < 3; i++) {
		memset(&thr[i], 0, sizeof(thr[i]));
		thr[i].id = i;
		thr[i].fn = fair_worker;
		pthread_create(&thr[i].pt, NULL, fair_thread, &thr[i]);
	}
	arch_host_set_cpu(3);
	for (i = 0; i < 2000 && !waiting; i++) {
		sleep_ms(1);
		waiting = __atomic_load_n(&fair_phase, __ATOMIC_ACQUIRE) >= 1 &&
		          rwlock_writer_waiting(&RWF);
	}
	try_failed = !read_trylock(&RWF);
	if (!try_failed)
		read_unlock(&RWF);
	__atomic_store_n(&fair_phase, 2, __ATOMIC_RELEASE); /* start the late reader */
	sleep_ms(20);
	__atomic_store_n(&fair_phase, 3, __ATOMIC_RELEASE); /* first reader leaves */
	for (i = 0; i < 3; i++)
		pthread_join(thr[i].pt, NULL);
	arch_host_set_cpu(0);
	printf("# rw_lock-fair: writer_waiting=%d new_reader_refused=%d writer_order=%d "
	       "late_reader_order=%d\n",
	       waiting, try_failed, fair_w_at, fair_r2_at);
	if (!waiting)
		return verdict(FAIL, "writer never seen waiting");
	if (!try_failed)
		return verdict(FAIL, "read_trylock succeeded past a waiting writer");
	if (fair_w_at > fair_r2_at)
		return verdict(FAIL, "late reader overtook the waiting writer");
	return passed();
}

/* ---- seqlock ------------------------------------------------------------ */

static seqlock_t SQ = SEQLOCK_INIT("seq");
static uint64_t sq_a, sq_b, sq_fail;

static void seq_worker(struct thr *t)
{
	while (running()) {
		if ((t->id == 0 && (t->ops++ & 1)) || rnd(t) % 16 == 0) {
			uint64_t v;

			write_seqlock(&SQ);
			v = __atomic_load_n(&sq_a, __ATOMIC_RELAXED) + 1;
			__atomic_store_n(&sq_a, v, __ATOMIC_RELAXED);
			delay(rnd(t) & 7);
			__atomic_store_n(&sq_b, v, __ATOMIC_RELAXED);
			write_sequnlock(&SQ);
			t->writes++;
			delay(rnd(t) & 63);
		} else {
			uint64_t x, y;
			unsigned int s;

			for (;;) {
				s = read_seqbegin(&SQ);
				x = __atomic_load_n(&sq_a, __ATOMIC_RELAXED);
				delay(rnd(t) & 7);
				y = __atomic_load_n(&sq_b, __ATOMIC_RELAXED);
				if (!read_seqretry(&SQ, s))
					break;
				t->retries++;
			}
			if (x != y)
				__atomic_fetch_add(&sq_fail, 1, __ATOMIC_RELAXED);
			t->reads++;
			delay(rnd(t) & 15);
		}
	}
}

static struct result t_seqlock(void)
{
	struct totals w, r;

	sq_a = sq_b = sq_fail = 0;
	run_threads(nthreads, seq_worker, run_ms);
	w = SUM(writes);
	r = SUM(reads);
	if (sq_a != w.total)
		sq_fail++;
	torture_line("seqlock", "Writes", w, sq_fail);
	torture_line("seqlock", "Reads", r, sq_fail);
	printf("# seqlock: read retries=%llu\n", (unsigned long long)SUM(retries).total);
	if (sq_fail)
		return verdict(FAIL, "%llu torn reads or lost writes", (unsigned long long)sq_fail);
	if (!w.total || !r.total)
		return verdict(FAIL, "no writes or no reads");
	return passed();
}

/* ---- multi-lock --------------------------------------------------------- */

#define ML_LOCKS 16
#define ML_MAX 6

static spinlock_t ML[ML_LOCKS];
static spinlock_t ML_global;
static uint64_t ml_count[ML_LOCKS];
static bool ml_global_mode;

static void ml_worker(struct thr *t)
{
	spinlock_t *set[ML_MAX];
	int idx[ML_MAX];

	while (running()) {
		int k = 1 + (int)(rnd(t) % ML_MAX);
		uint32_t seen = 0;

		for (int i = 0; i < k; i++) {
			int j = (int)(rnd(t) % ML_LOCKS);

			/* global mode needs distinct locks; sorted mode must cope with repeats */
			while (ml_global_mode && (seen & (1u << j)))
				j = (j + 1) % ML_LOCKS;
			seen |= 1u << j;
			idx[i] = j;
			set[i] = &ML[j];
		}
		if (rnd(t) % 4 == 0) { /* a plain single-lock user */
			spin_lock(&ML[idx[0]]);
			bump(&ml_count[idx[0]], t);
			t->expect[idx[0]]++;
			spin_unlock(&ML[idx[0]]);
			t->ops++;
			continue;
		}
		if (ml_global_mode)
			multi_lock_global(&ML_global, set, k);
		else
			multi_lock_sorted(set, k);
		for (int j = 0; j < ML_LOCKS; j++) {
			if (seen & (1u << j)) {
				bump(&ml_count[j], t);
				t->expect[j]++;
			}
		}
		if (ml_global_mode)
			multi_unlock_global(set, k);
		else
			multi_unlock_sorted(set, k);
		t->ops++;
	}
}

static struct result ml_test(bool global)
{
	uint64_t fail = 0;

	for (int j = 0; j < ML_LOCKS; j++) {
		spin_lock_init(&ML[j]);
		lock_set_name(&ML[j].rlock.tl, "multi.member");
		ml_count[j] = 0;
	}
	spin_lock_init(&ML_global);
	lock_set_name(&ML_global.rlock.tl, "multi.global");
	ml_global_mode = global;
	run_threads(nthreads, ml_worker, run_ms);
	for (int j = 0; j < ML_LOCKS; j++) {
		uint64_t e = 0;

		for (int i = 0; i < nthreads; i++)
			e += thr[i].expect[j];
		fail += ml_count[j] != e;
		fail += spin_is_locked(&ML[j]);
	}
	torture_line(global ? "multi_global" : "multi_sorted", "Writes", SUM(ops), fail);
	if (fail)
		return verdict(FAIL, "%llu locks with wrong counts", (unsigned long long)fail);
	return passed();
}

static struct result t_multi_sorted(void)
{
	return ml_test(false);
}
static struct result t_multi_global(void)
{
	return ml_test(true);
}

/* ---- child processes ---------------------------------------------------- */

/* Runs argv with stdout+stderr captured into buf; returns the wait status. */
static int run_child(char *const argv[], char *buf, size_t len, int timeout_ms)
{
	int fd[2], status = 0;
	size_t used = 0;
	pid_t pid;
	uint64_t end = arch_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	if (pipe(fd))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(fd[1], 1);
		dup2(fd[1], 2);
		close(fd[0]);
		close(fd[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fd[1]);
	for (;;) {
		struct pollfd p = {fd[0], POLLIN, 0};
		int64_t left = (int64_t)(end - arch_now_ns()) / 1000000;
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		n = read(fd[0], buf + used, len - 1 - used);
		if (n <= 0)
			break;
		used += (size_t)n;
		if (used >= len - 1)
			break;
	}
	buf[used] = 0;
	close(fd[0]);
	waitpid(pid, &status, 0);
	return status;
}

/* Child output becomes KTAP diagnostics. */
static void echo_diag(const char *buf)
{
	const char *p = buf;

	while (*p) {
		const char *e = strchr(p, '\n');
		int n = e ? (int)(e - p) : (int)strlen(p);

		if (!strncmp(p, "# ", 2))
			printf("%.*s\n", n, p);
		else
			printf("#   %.*s\n", n, p);
		p += n + (e ? 1 : 0);
	}
}

static char self_exe[4096];
static char child_out[65536];

static __attribute__((unused)) bool died_of_abort(int st)
{
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static struct result t_debug_recursion(void)
{
#ifdef LOCK_DEBUG
	char *argv[] = {self_exe, "--child=recursion", NULL};
	int st = run_child(argv, child_out, sizeof(child_out), 20000);

	echo_diag(child_out);
	if (!died_of_abort(st) || !strstr(child_out, "recursive locking") ||
	    !strstr(child_out, "child.recursion"))
		return verdict(FAIL, "no recursion panic naming the lock");
	return passed();
#else
	return verdict(SKIP, "built without LOCK_DEBUG");
#endif
}

static struct result t_debug_timeout(void)
{
#ifdef LOCK_DEBUG
	char *argv[] = {self_exe, "--child=timeout", NULL};
	int st = run_child(argv, child_out, sizeof(child_out), 20000);

	echo_diag(child_out);
	if (!died_of_abort(st) || !strstr(child_out, "spin-timeout") ||
	    !strstr(child_out, "held by CPU#1") || !strstr(child_out, "CPU#1 backtrace") ||
	    !strstr(child_out, "CPU#0 backtrace"))
		return verdict(FAIL,
		               "no spin-timeout panic naming the holder with both backtraces");
	return passed();
#else
	return verdict(SKIP, "built without LOCK_DEBUG");
#endif
}

static struct result t_broken(void)
{
	char arg_threads[32];
	char *argv[] = {(char *)plain_bin, "--child=broken", arg_threads, NULL};
	int st;

	if (!plain_bin)
		return verdict(SKIP, "no --plain=PATH (non-TSan build) given");
	snprintf(arg_threads, sizeof(arg_threads), "--threads=%d", nthreads);
	st = run_child(argv, child_out, sizeof(child_out), 30000);
	echo_diag(child_out);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return verdict(XFAIL, "deliberately broken lock: exclusion failure caught");
	return verdict(FAIL, "the broken lock was not caught (status 0x%x)", st);
}

/* --child=...: run inside a fresh process. */
static struct ticket_lock C_lock = TICKET_LOCK_INIT("child.recursion");
static struct ticket_lock C_held = TICKET_LOCK_INIT("child.held");
static int c_holding;

static void *holder_thread(void *p)
{
	(void)p;
	arch_host_set_cpu(1);
	ticket_lock(&C_held);
	__atomic_store_n(&c_holding, 1, __ATOMIC_RELEASE);
	for (;;)
		sleep_ms(100);
	return NULL;
}

static int child_main(const char *what)
{
	arch_host_set_num_cpus(2);
	arch_host_set_cpu(0);
	if (!strcmp(what, "recursion")) {
		ticket_lock(&C_lock);
		ticket_lock(&C_lock);
		printf("recursion not detected\n");
		return 1;
	}
	if (!strcmp(what, "timeout")) {
		pthread_t pt;

		lock_spin_timeout_ns = 200000000ull;
		pthread_create(&pt, NULL, holder_thread, NULL);
		while (!__atomic_load_n(&c_holding, __ATOMIC_ACQUIRE))
			sleep_ms(1);
		ticket_lock(&C_held);
		printf("spin-timeout not detected\n");
		return 1;
	}
	if (!strcmp(what, "broken")) {
		if (nthreads > (int)sysconf(_SC_NPROCESSORS_ONLN))
			arch_host_yield_every = 128;
		for (int run = 1; run <= 10; run++) {
			uint64_t fail;

			broken_lock_init(&L_broken);
			fail = excl_run(&ops_broken, 250, true);

			printf("# broken: run %d: bailouts=%u\n", run, L_broken.bailouts);
			if (fail) {
				printf("# broken: caught in run %d (expected failure)\n", run);
				return 0;
			}
		}
		printf("# broken: NOT caught in 10 runs\n");
		return 2;
	}
	fprintf(stderr, "unknown child %s\n", what);
	return 1;
}

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

static int bench_main(void)
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

/* ---- suite -------------------------------------------------------------- */

struct test {
	const char *name;
	struct result (*fn)(void);
};

static const struct test tests[] = {
    {"tas_torture", t_tas},
    {"ticket_torture", t_ticket},
    {"lockstat_ticket", t_lockstat},
    {"spin_lock_torture", t_spin},
    {"brk_torture", t_brk},
    {"brk_lockbreak_lost_zero", t_brk_lockbreak},
    {"brk_contended_lost_zero", t_brk_contended},
    {"brk_legacy_flag_loses_requests", t_brk_legacy},
    {"pvticket_torture", t_pvticket},
    {"mcs_torture", t_mcs},
    {"rwlock_torture", t_rwlock},
    {"rwlock_writer_fair", t_rwlock_fair},
    {"seqlock_torture", t_seqlock},
    {"multi_sorted_torture", t_multi_sorted},
    {"multi_global_torture", t_multi_global},
    {"debug_recursion_panics", t_debug_recursion},
    {"debug_spin_timeout_panics", t_debug_timeout},
    {"broken_lock_caught", t_broken},
};

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
	int n = (int)(sizeof(tests) / sizeof(tests[0]));
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
			m += !strcmp(tests[i].name, only);
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

		if (only && strcmp(tests[i].name, only))
			continue;
		num++;
		fflush(stdout);
		r = tests[i].fn();
		switch (r.v) {
		case PASS:
			printf("ok %d %s\n", num, tests[i].name);
			pass++;
			break;
		case XFAIL:
			printf("ok %d %s # XFAIL %s\n", num, tests[i].name, r.why);
			pass++;
			break;
		case SKIP:
			printf("ok %d %s # SKIP %s\n", num, tests[i].name, r.why);
			skip++;
			break;
		default:
			printf("# %s: %s\n", tests[i].name, r.why);
			printf("not ok %d %s\n", num, tests[i].name);
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
