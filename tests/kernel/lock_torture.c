/*
 * The `lock` suite, part 1: mutual exclusion under torture.
 *
 * Every registered lock type (kernel/lock/registry.h: no list here) is
 * hammered by every online CPU at once for a fixed time, each type a nested
 * KTAP result of lock.exclusion (lock.exclusion.<type>).
 * Inside the critical section the shared data is updated with plain loads
 * and stores (read, pause, write back) and an occupancy probe records who
 * is inside, so a lock that admits two CPUs loses updates and trips the
 * probe.  The counts must add up exactly.  Read sides get their own checks:
 * rwlock readers must never meet a writer or two fields a writer keeps
 * equal caught apart; seqlock readers must never accept a torn pair.  The
 * statistics are printed in locktorture's format (contract):
 *
 *   # <lock>-torture: Writes:  Total: <n>  Max/Min: <max>/<min> [???]  Fail: <n> [!!!]
 *
 * with the per-CPU acquisition counts behind Max/Min.
 *
 * Deliberately broken types (LOCK_PROP_BROKEN, e.g. the ticket lock with a
 * non-atomic ticket increment in kernel/lock/broken.c) prove the checks can
 * fail: the same torture must catch them (XFAIL), and one it does not catch
 * is `not ok`.  In lock_latency.c the 2.6 break_lock flag that loses
 * requests is the breakable lock's own XFAIL.  Fairness under saturation
 * is in lock_torture_fairness.c.
 */
#include "lock_common.h"

/* How long each torture run lasts. */
#define TORTURE_MS 250

/*
 * A broken type is tortured round after round until it is caught, for up
 * to BROKEN_CATCH_MS of guest time: collisions need two vCPUs running at
 * once, which a loaded host grants only part of the time, so a fixed small
 * number of rounds missed the broken qspinlock once in real time.  The
 * bound is generous (the broken types are usually caught in the first
 * round); a broken type that survives it is `not ok`.
 */
#define BROKEN_CATCH_MS 30000
/*
 * Two checks need CPUs to meet at the lock: a PV type's waiters must take
 * the halt path with the threshold this low, and LOCK_STAT must count
 * contention.  On a loaded host two vCPUs may barely overlap in a round
 * (one 250 ms round at 2 vCPUs counted 2 contentions in 5969 acquisitions,
 * and no halt), so such a type is tortured until the round shows it met
 * contention (a halt; a contention counted), for up to OVERLAP_MS.
 */
#define OVERLAP_MS 10000
/* PV types' spin threshold during the torture, so that waiters also halt and are kicked. */
#define TORTURE_PV_SPINS 4

/*
 * One torture run of `lk` on every CPU.  Returns the number of violations:
 * probe hits plus lost (or invented) updates; *ok false if the run itself
 * failed (a CPU did not arrive or finish: a test failure already).
 */
static uint64_t torture_exclusive(const struct lt_lock *lk, bool *ok)
{
	struct lt_counts c;
	uint64_t fails;

	lt_xs.counter = 0;
	lt_xs.owner = 0;
	lt_prepare(&lt, lt_exclusion_body, (void *)lk, TORTURE_MS);
	*ok = lt_run_cpus(&lt, 0, LT_RUN_TIMEOUT_MS);
	if (!*ok)
		return 0;
	c = LT_COUNT(&lt, lt.ncpus, ops);
	fails = lt_exclusion_fails(&lt, lt.ncpus);
	lt_torture_line(lk->t->name, "Writes", &c, fails);
	return fails;
}

/* A type's LOCK_STAT figures, which the lock itself protects, must agree with the run. */
static void check_stat(struct lt_sub *s, const struct lt_lock *lk)
{
	const struct lock_stat *st = lt_stat(lk);
	char name[48];
	uint64_t ops = LT_SUM(&lt, lt.ncpus, ops);

	if (!st)
		return;
	snprintf(name, sizeof(name), "lock.%s", lk->t->name);
	lock_stat_print(name, st);
	if (st->acquisitions != ops)
		lt_sub_fail(s, lk->t, "LOCK_STAT counts %lu acquisitions of %lu", st->acquisitions,
		            ops);
	if (st->contentions > st->acquisitions)
		lt_sub_fail(s, lk->t, "LOCK_STAT counts %lu contentions, over the acquisitions",
		            st->contentions);
	if (lt.ncpus > 1 && !st->contentions)
		lt_sub_fail(s, lk->t, "LOCK_STAT counts no contention on %d CPUs", lt.ncpus);
}

static void exclusion_one(struct lt_sub *s, const struct lock_type *t)
{
	uint64_t fails = 0, halts0 = 0, kicks0 = 0, halts = 0, kicks = 0, until;
	unsigned saved = 0;
	struct lt_lock lk;
	bool ok = true, more;
	int round = 0;

	if (lt_broken(t) && num_online_cpus() < 2) {
		lt_sub_end(s, t, "a broken lock needs 2 CPUs to show");
		return;
	}
	if (!lt_use(&lk, t, 0)) {
		lt_sub_fail(s, t, "no instance");
		lt_sub_end(s, t, NULL);
		return;
	}
	if (t->spin_threshold)
		saved = t->spin_threshold(TORTURE_PV_SPINS);
	if (t->pv_counts)
		t->pv_counts(&halts0, &kicks0);
	until = rdtsc() + ns_to_tsc((lt_broken(t) ? BROKEN_CATCH_MS : OVERLAP_MS) * NSEC_PER_MSEC);
	do {
		if (round)
			lt_use(&lk, t, 0);
		fails = torture_exclusive(&lk, &ok);
		round++;
		if (t->pv_counts)
			t->pv_counts(&halts, &kicks);
		/* Broken: until caught.  Others: until CPUs met at the lock (or a violation). */
		if (lt_broken(t))
			more = !fails;
		else
			more =
			    ok && !fails && lt.ncpus > 1 &&
			    ((t->pv_counts && halts == halts0 && config.clock != CLOCK_VIRTUAL) ||
			     (lt_stat(&lk) && !lt_stat(&lk)->contentions));
	} while (ok && more && (int64_t)(rdtsc() - until) < 0);
	if (t->spin_threshold)
		t->spin_threshold(saved);
	if (t->pv_counts) {
		kprintf("    # %s: threshold=%d halts=%lu kicks=%lu rounds=%d\n", t->name,
		        TORTURE_PV_SPINS, halts - halts0, kicks - kicks0, round);
		/*
		 * With the threshold this low, some waiter must have taken the halt
		 * path.  Not under clock=virtual: there a waiter's PAUSE hands its
		 * turn to the other vCPUs, the holder among them, and the PV
		 * qspinlock's waiters never spin long enough to sleep (docs/clock.md;
		 * lock.pvqspinlock_lost_kick_audit says SKIP for the same reason).
		 */
		if (ok && lt.ncpus > 1 && !lt_broken(t) && halts == halts0 &&
		    config.clock == CLOCK_VIRTUAL)
			kprintf("    # %s: clock=virtual: no waiter halted (PAUSE hands the turn "
			        "on)\n",
			        t->name);
		else if (ok && lt.ncpus > 1 && !lt_broken(t) && halts == halts0)
			lt_sub_fail(s, t, "no waiter halted with a threshold of %d spins in %d ms",
			            TORTURE_PV_SPINS, OVERLAP_MS);
	}
	if (!ok)
		lt_sub_fail(s, t, "the run did not complete");
	else if (fails)
		lt_sub_fail(s, t, "%lu exclusion violations (counter %lu) after %d round(s)", fails,
		            lt_xs.counter, round);
	else if (lt_broken(t))
		kprintf("    # %s: no violation in %d rounds (%d ms)\n", t->name, round,
		        BROKEN_CATCH_MS);
	if (ok && !lt_broken(t)) {
		check_stat(s, &lk);
		if (t->is_locked && t->is_locked(lk.l))
			lt_sub_fail(s, t, "still locked after the run");
	}
	lt_sub_end(s, t, NULL);
}

/*
 * Every registered type, reader-writer ones by their writer side.  A broken
 * type gets runs until caught, for up to BROKEN_CATCH_MS, to show its
 * violations, a PV or LOCK_STAT type until its CPUs met at the lock (the
 * timeout allows two broken and three such types their full bounds).
 */
KTEST(lock, exclusion, .timeout_ms = 180000)
{
	const struct lock_type *t;
	struct lt_sub s;

	lt_sub_begin(&s, lock_type_count());
	for_each_lock_type(t, pp) {
		exclusion_one(&s, t);
	}
}

/* ---- Reader-writer types: writers exclusive, readers together but never with a writer. */

static struct {
	struct lt_lock lk;
	uint64_t counter; /* plain increments by writers */
	uint64_t a, b;    /* a writer sets both, apart in time; readers must see them equal */
	int writer;       /* CPU id + 1 of the writer inside */
	int readers;      /* readers inside (atomic) */
	int readers_max;  /* most readers seen inside at once */
} rw __cacheline_aligned;

static void rw_body(struct lt_run *r, int cpu, struct lt_pcpu *pc)
{
	const struct lock_type *t = rw.lk.t;
	void *l = rw.lk.l;

	while (!lt_over(r)) {
		if (lt_rand(pc) % 8 == 0) {
			t->lock(l);
			if (READ_ONCE(rw.writer) || __atomic_load_n(&rw.readers, __ATOMIC_RELAXED))
				pc->fails++;
			WRITE_ONCE(rw.writer, cpu + 1);
			uint64_t v = READ_ONCE(rw.counter) + 1;
			WRITE_ONCE(rw.a, v);
			lt_spin(LT_CS_WINDOW);
			WRITE_ONCE(rw.b, v);
			WRITE_ONCE(rw.counter, v);
			if (READ_ONCE(rw.writer) != cpu + 1)
				pc->fails++;
			WRITE_ONCE(rw.writer, 0);
			t->unlock(l);
			pc->ops++;
		} else {
			t->read_lock(l);
			int inside = __atomic_add_fetch(&rw.readers, 1, __ATOMIC_RELAXED);
			if (inside > 1 &&
			    inside > __atomic_load_n(&rw.readers_max, __ATOMIC_RELAXED))
				__atomic_store_n(&rw.readers_max, inside, __ATOMIC_RELAXED);
			uint64_t a = READ_ONCE(rw.a);
			lt_spin(LT_CS_WINDOW);
			uint64_t b = READ_ONCE(rw.b);
			if (a != b || READ_ONCE(rw.writer))
				pc->fails++;
			__atomic_sub_fetch(&rw.readers, 1, __ATOMIC_RELAXED);
			t->read_unlock(l);
			pc->reads++;
		}
		lt_spin(lt_rand(pc) % 8);
	}
}

static void rw_one(struct lt_sub *s, const struct lock_type *t)
{
	struct lt_counts w, rd;
	uint64_t fails;
	char extra[48];

	memset(&rw, 0, sizeof(rw));
	if (!t->read_lock || !t->read_unlock) {
		lt_sub_fail(s, t, "LOCK_PROP_RW without read_lock/read_unlock");
		lt_sub_end(s, t, NULL);
		return;
	}
	if (!lt_use(&rw.lk, t, 0) ||
	    (lt_prepare(&lt, rw_body, NULL, TORTURE_MS), !lt_run_cpus(&lt, 0, LT_RUN_TIMEOUT_MS))) {
		lt_sub_fail(s, t, "the run did not complete");
		lt_sub_end(s, t, NULL);
		return;
	}
	w = LT_COUNT(&lt, lt.ncpus, ops);
	rd = LT_COUNT(&lt, lt.ncpus, reads);
	fails = LT_SUM(&lt, lt.ncpus, fails) + (rw.counter != w.total) + (rw.a != rw.b);
	lt_torture_line(t->name, "Writes", &w, fails);
	lt_torture_line(t->name, "Reads", &rd, fails);
	snprintf(extra, sizeof(extra), "cpus=%d", lt.ncpus);
	lt_metric(t->name, "readers_inside_max", rw.readers_max, "readers", extra);
	if (fails)
		lt_sub_fail(s, t, "%lu violations (counter %lu, writes %lu, a %lu b %lu)", fails,
		            rw.counter, w.total, rw.a, rw.b);
	if (!rd.total)
		lt_sub_fail(s, t, "no reader got in");
	if (lt.ncpus > 1 && !w.total)
		lt_sub_fail(s, t, "no writer got in");
	lt_sub_end(s, t, NULL);
}

static bool is_rw(const struct lock_type *t)
{
	return t->props & LOCK_PROP_RW;
}

KTEST(lock, rw_exclusion, .timeout_ms = 30000)
{
	const struct lock_type *t;
	struct lt_sub s;
	int n = 0;

	for_each_lock_type(t, pp) {
		n += is_rw(t);
	}
	lt_sub_begin(&s, n);
	for_each_lock_type(t, pp) {
		if (is_rw(t))
			rw_one(&s, t);
	}
}

/* ---- seqlock: writers serialised; readers retry and never accept a torn pair. */

static struct {
	seqlock_t lock;
	uint64_t counter; /* plain increments by writers */
	uint64_t a, b;    /* written by writers apart in time, read racily (atomics) */
	int writer;
} sq __cacheline_aligned;

static void seqlock_body(struct lt_run *r, int cpu, struct lt_pcpu *pc)
{
	while (!lt_over(r)) {
		if (lt_rand(pc) % 4 == 0) {
			write_seqlock(&sq.lock);
			if (READ_ONCE(sq.writer))
				pc->fails++;
			WRITE_ONCE(sq.writer, cpu + 1);
			uint64_t v = READ_ONCE(sq.counter) + 1;
			__atomic_store_n(&sq.a, v, __ATOMIC_RELAXED);
			lt_spin(LT_CS_WINDOW);
			__atomic_store_n(&sq.b, v, __ATOMIC_RELAXED);
			WRITE_ONCE(sq.counter, v);
			if (READ_ONCE(sq.writer) != cpu + 1)
				pc->fails++;
			WRITE_ONCE(sq.writer, 0);
			write_sequnlock(&sq.lock);
			pc->ops++;
		} else {
			uint64_t a, b;
			unsigned s;

			for (;;) {
				s = read_seqbegin(&sq.lock);
				a = __atomic_load_n(&sq.a, __ATOMIC_RELAXED);
				lt_spin(LT_CS_WINDOW);
				b = __atomic_load_n(&sq.b, __ATOMIC_RELAXED);
				if (!read_seqretry(&sq.lock, s))
					break;
				pc->x[0]++; /* retries */
				if (lt_over(r))
					return;
			}
			/* Accepted: consistent, and never older than what this CPU saw before. */
			if (a != b || a < pc->x[1])
				pc->fails++;
			pc->x[1] = a;
			pc->reads++;
		}
		lt_spin(lt_rand(pc) % 8);
	}
}

KTEST(lock, seqlock_exclusion, .timeout_ms = 8000)
{
	struct lt_counts w, rd;
	uint64_t fails;
	char extra[48];

	memset(&sq, 0, sizeof(sq));
	seqlock_init(&sq.lock);
	lock_set_name(&sq.lock.lock, "lock.seqlock");
	lt_prepare(&lt, seqlock_body, NULL, TORTURE_MS);
	if (!lt_run_cpus(&lt, 0, LT_RUN_TIMEOUT_MS))
		return;
	w = LT_COUNT(&lt, lt.ncpus, ops);
	rd = LT_COUNT(&lt, lt.ncpus, reads);
	fails = LT_SUM(&lt, lt.ncpus, fails) + (sq.counter != w.total) + (sq.a != sq.b);
	lt_torture_line("seqlock", "Writes", &w, fails);
	lt_torture_line("seqlock", "Reads", &rd, fails);
	snprintf(extra, sizeof(extra), "cpus=%d", lt.ncpus);
	lt_metric("seqlock", "reader_retries", (long long)LT_SUM(&lt, lt.ncpus, x[0]), "retries",
	          extra);
	KT_EXPECT_EQ(LT_SUM(&lt, lt.ncpus, fails), 0);
	KT_EXPECT_EQ(sq.counter, w.total);
	KT_EXPECT_EQ(sq.a, sq.counter);
	KT_EXPECT_EQ(sq.b, sq.counter);
	KT_EXPECT(rd.total > 0);
}

/* ---- Multi-lock: random overlapping sets from a pool, sorted or global-first. */

#define ML_POOL 16
#define ML_MAX 8

struct ml_slot {
	spinlock_t lock;
	uint64_t counter; /* plain increments by whoever holds `lock` */
	int owner;
} __cacheline_aligned;

static struct ml_slot ml_pool[ML_POOL];
static spinlock_t ml_global __cacheline_aligned;
static uint32_t ml_tally[MAX_CPUS][ML_POOL];

static inline void ml_touch(int cpu, int i, struct lt_pcpu *pc)
{
	struct ml_slot *s = &ml_pool[i];
	uint64_t v;

	if (READ_ONCE(s->owner))
		pc->fails++;
	WRITE_ONCE(s->owner, cpu + 1);
	v = READ_ONCE(s->counter);
	lt_spin(2);
	WRITE_ONCE(s->counter, v + 1);
	if (READ_ONCE(s->owner) != cpu + 1)
		pc->fails++;
	WRITE_ONCE(s->owner, 0);
	ml_tally[cpu][i]++;
}

static void multilock_body(struct lt_run *r, int cpu, struct lt_pcpu *pc)
{
	bool sorted = r->ctx != NULL;
	spinlock_t *set[ML_MAX];

	while (!lt_over(r)) {
		uint32_t mask = 0;
		int k = 0;

		if (lt_rand(pc) % 4 == 0) { /* a single-lock user, as the protocols allow */
			int i = (int)(lt_rand(pc) % ML_POOL);

			spin_lock(&ml_pool[i].lock);
			ml_touch(cpu, i, pc);
			spin_unlock(&ml_pool[i].lock);
			pc->x[0]++;
			continue;
		}
		for (int want = 2 + (int)(lt_rand(pc) % (ML_MAX - 1)); k < want;) {
			int i = (int)(lt_rand(pc) % ML_POOL);

			if ((mask & (1u << i)) && !sorted)
				continue; /* global-first takes no duplicates; sorted skips them */
			mask |= 1u << i;
			set[k++] = &ml_pool[i].lock;
		}
		if (sorted)
			multi_lock_sorted(set, k);
		else
			multi_lock_global(&ml_global, set, k);
		for (int i = 0; i < ML_POOL; i++)
			if (mask & (1u << i))
				ml_touch(cpu, i, pc);
		if (sorted)
			multi_unlock_sorted(set, k);
		else
			multi_unlock_global(set, k);
		pc->ops++;
	}
}

static void multilock_test(bool sorted)
{
	const char *name = sorted ? "multilock_sorted" : "multilock_global";
	uint64_t mismatched = 0;
	struct lt_counts c;

	memset(ml_pool, 0, sizeof(ml_pool));
	memset(ml_tally, 0, sizeof(ml_tally));
	for (int i = 0; i < ML_POOL; i++) {
		spin_lock_init(&ml_pool[i].lock);
		lock_set_name(&ml_pool[i].lock.rlock.tl, "lock.multilock.pool");
	}
	spin_lock_init(&ml_global);
	lock_set_name(&ml_global.rlock.tl, "lock.multilock.global");
	lt_prepare(&lt, multilock_body, sorted ? (void *)1 : NULL, TORTURE_MS);
	if (!lt_run_cpus(&lt, 0, LT_RUN_TIMEOUT_MS))
		return;
	for (int i = 0; i < ML_POOL; i++) {
		uint64_t want = 0;

		for (int cpu = 0; cpu < lt.ncpus; cpu++)
			want += ml_tally[cpu][i];
		if (ml_pool[i].counter != want) {
			kt_fail(__FILE__, __LINE__, "%s: lock %d counted %lu of %lu updates", name,
			        i, ml_pool[i].counter, want);
			mismatched++;
		}
		KT_EXPECT(!spin_is_locked(&ml_pool[i].lock));
	}
	c = LT_COUNT(&lt, lt.ncpus, ops);
	lt_torture_line(name, "Writes", &c, LT_SUM(&lt, lt.ncpus, fails) + mismatched);
	KT_EXPECT_EQ(LT_SUM(&lt, lt.ncpus, fails), 0);
	KT_EXPECT(c.total > 0);
	KT_EXPECT(LT_SUM(&lt, lt.ncpus, x[0]) > 0);
}

KTEST(lock, multilock_sorted_exclusion, .timeout_ms = 8000)
{
	multilock_test(true);
}

KTEST(lock, multilock_global_exclusion, .timeout_ms = 8000)
{
	multilock_test(false);
}
