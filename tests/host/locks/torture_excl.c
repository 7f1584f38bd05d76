/*
 * The torture tests of the locks that admit one holder at a time: tas,
 * ticket (and its LOCK_STAT), spinlock_t, breakable, pvticket, MCS, and sets
 * of spinlocks taken together.  They ask the same question (did the lock
 * ever let two CPUs in?) and answer it the same way, with a counter updated
 * by plain accesses inside the lock, so they live together.
 */
#define _GNU_SOURCE
#include "torture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- mutual exclusion, one lock ---------------------------------------- */

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
uint64_t excl_run(const struct excl_ops *ops, int ms, bool print)
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

struct ticket_lock L_ticket = TICKET_LOCK_INIT("ticket");
struct mcs_lock L_mcs = MCS_LOCK_INIT("mcs");
DEFINE_SPINLOCK(L_spin);
static __thread unsigned long spin_flags;
static __thread bool spin_tried;
static __thread unsigned int spin_n;

static void ticket_l(void)
{
	ticket_lock(&L_ticket);
}
static void ticket_u(void)
{
	ticket_unlock(&L_ticket);
}
static void mcs_l(void)
{
	mcs_spin_lock(&L_mcs);
}
static void mcs_u(void)
{
	mcs_spin_unlock(&L_mcs);
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

static const struct excl_ops ops_ticket = {"ticket", ticket_l, ticket_u};
static const struct excl_ops ops_mcs = {"mcs", mcs_l, mcs_u};
static const struct excl_ops ops_spin = {"spin_lock", spin_l, spin_u};

static struct result excl_test(const struct excl_ops *ops)
{
	uint64_t fail = excl_run(ops, run_ms, true);

	if (fail)
		return verdict(FAIL, "%llu exclusion failures", (unsigned long long)fail);
	if (!SUM(ops).min)
		return verdict(FAIL, "a thread never got the lock");
	return passed();
}

struct result t_spin(void)
{
	return excl_test(&ops_spin);
}

/* LOCK_STAT of the ticket lock, tortured here on its own. */
struct result t_lockstat(void)
{
#ifdef LOCK_STAT
	const struct lock_stat *s = &L_ticket.meta.stat;
	struct totals w;
	uint64_t hist = 0, fail;

	ticket_lock_init(&L_ticket);
	lock_set_name(&L_ticket, "ticket");
	fail = excl_run(&ops_ticket, run_ms, true);
	w = SUM(ops);
	lock_stat_print("ticket", s);
	for (int b = 0; b < LOCK_STAT_BUCKETS; b++)
		hist += s->hold_hist[b];
	if (fail)
		return verdict(FAIL, "%llu exclusion failures", (unsigned long long)fail);
	if (s->acquisitions != w.total || hist != s->acquisitions)
		return verdict(FAIL, "acquisitions %llu, expected %llu, hold samples %llu",
		               (unsigned long long)s->acquisitions, (unsigned long long)w.total,
		               (unsigned long long)hist);
	if (!s->contentions || !s->wait_ns_max)
		return verdict(FAIL, "no contention recorded");
	return passed();
#else
	(void)ops_ticket;
	return verdict(SKIP, "built without LOCK_STAT");
#endif
}

/* ---- every registered type ---------------------------------------------- */

/* The instance under torture, and the excl_ops that take it. */
static const struct lock_type *ty;
static void *ty_lock;

static void ty_l(void)
{
	ty->lock(ty_lock);
}
static void ty_u(void)
{
	ty->unlock(ty_lock);
}

static void *ty_new(const struct lock_type *t)
{
	size_t size = (t->size + LOCK_CACHELINE - 1) / LOCK_CACHELINE * LOCK_CACHELINE;
	void *l = aligned_alloc(LOCK_CACHELINE, size ? size : LOCK_CACHELINE);

	if (!l) {
		perror("aligned_alloc");
		exit(1);
	}
	memset(l, 0, size);
	t->init(l, t->name);
	return l;
}

/* PV types: a low spin threshold, so that waiters halt and are kicked. */
#define TY_PV_SPINS 64

struct result t_type(const struct lock_type *t)
{
	const struct excl_ops ops = {t->name, ty_l, ty_u};
	uint64_t halts0 = 0, kicks0 = 0, halts = 0, kicks = 0, fail;
	struct arch_host_stats hs;
	unsigned int saved = 0;
	struct result r;

	if (t->props & LOCK_PROP_BROKEN) {
		char arg_threads[32], arg_type[96];
		char *argv[] = {(char *)plain_bin, arg_type, arg_threads, NULL};

		if (!plain_bin)
			return verdict(SKIP, "no --plain=PATH (non-TSan build) given");
		snprintf(arg_threads, sizeof(arg_threads), "--threads=%d", nthreads);
		snprintf(arg_type, sizeof(arg_type), "--child=type:%s", t->name);
		int st = run_child_echo(argv, 30000);

		if (st == 0)
			return verdict(XFAIL, "deliberately broken (%s): exclusion failure caught",
			               t->origin ? t->origin : "");
		return verdict(FAIL, "the broken lock was not caught (status 0x%x)", st);
	}
	ty = t;
	ty_lock = ty_new(t);
	if (t->spin_threshold)
		saved = t->spin_threshold(TY_PV_SPINS);
	if (t->pv_counts)
		t->pv_counts(&halts0, &kicks0);
	arch_host_reset_stats();
	fail = excl_run(&ops, run_ms, true);
	arch_host_get_stats(&hs);
	if (t->spin_threshold)
		t->spin_threshold(saved);
	if (t->pv_counts) {
		t->pv_counts(&halts, &kicks);
		halts -= halts0;
		kicks -= kicks0;
		printf("# %s: threshold=%d halts=%llu kicks=%llu futex_sleeps=%llu "
		       "sleep_timeouts=%llu\n",
		       t->name, TY_PV_SPINS, (unsigned long long)halts, (unsigned long long)kicks,
		       (unsigned long long)hs.halts, (unsigned long long)hs.halt_timeouts);
	}
	r = passed();
	if (fail)
		r = verdict(FAIL, "%llu exclusion failures", (unsigned long long)fail);
	else if (!SUM(ops).min)
		r = verdict(FAIL, "a thread never got the lock");
	else if (t->is_locked && t->is_locked(ty_lock))
		r = verdict(FAIL, "lock left held");
	else if ((t->props & LOCK_PROP_PV) && t->spin_threshold && nthreads > 1 && !hs.halts)
		r = verdict(FAIL, "slow path not exercised: no waiter slept");
	else if (t->pv_counts && nthreads > 1 && (!halts || !kicks))
		r = verdict(FAIL, "slow path not exercised (halts %llu, kicks %llu)",
		            (unsigned long long)halts, (unsigned long long)kicks);
	else if (t->stat && t->stat(ty_lock) && t->stat(ty_lock)->acquisitions != SUM(ops).total)
		r = verdict(FAIL, "LOCK_STAT counts %llu acquisitions of %llu",
		            (unsigned long long)t->stat(ty_lock)->acquisitions,
		            (unsigned long long)SUM(ops).total);
	/* One holder, nobody waiting: not contended. */
	if (r.v == PASS && t->trylock && t->is_contended) {
		if (!t->trylock(ty_lock)) {
			r = verdict(FAIL, "trylock of a free lock failed");
		} else {
			bool contended = t->is_contended(ty_lock);

			t->unlock(ty_lock);
			if (contended)
				r = verdict(FAIL, "is_contended() true with one holder");
		}
	}
	free(ty_lock);
	ty_lock = NULL;
	return r;
}

/* --child=type:<name> in the plain build: a broken type, caught or not. */
int broken_type_main(const char *name, int runs)
{
	const struct lock_type *t = lock_type_find(name);
	const struct excl_ops ops = {name, ty_l, ty_u};

	if (!t) {
		fprintf(stderr, "no lock type %s\n", name);
		return 1;
	}
	if (nthreads > (int)sysconf(_SC_NPROCESSORS_ONLN))
		arch_host_yield_every = 128;
	ty = t;
	for (int run = 1; run <= runs; run++) {
		ty_lock = ty_new(t);
		uint64_t fail = excl_run(&ops, 250, true);

		/* Not freed: a broken lock may leave a thread's node linked into it. */
		if (fail) {
			printf("# %s: caught in run %d (expected failure)\n", name, run);
			return 0;
		}
	}
	printf("# %s: NOT caught in %d runs\n", name, runs);
	return 2;
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

struct result t_mcs(void)
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

/* ---- multi-lock --------------------------------------------------------- */

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

struct result t_multi_sorted(void)
{
	return ml_test(false);
}
struct result t_multi_global(void)
{
	return ml_test(true);
}
