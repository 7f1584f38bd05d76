/*
 * The `lock` suite, part 2: breakable locks and the latency of waiting.
 *
 * A holder walks a long list under a lock and offers a break after every
 * item; a waiter on another CPU keeps asking for the lock.  With
 * need_lockbreak() (or the contention test, side by side) the waiter waits
 * about one item; with a plain ticket lock, whose holder can only look at
 * need_resched() (never set for a waiter on another CPU), it waits for the
 * whole walk.  The nested case has the waiter spin on the inner lock while
 * holding one of its own, and the holder break only the inner of its two.
 * Waits are measured two ways: as missed breaks counted by the holder
 * (exact, whatever the host does) and in nanoseconds (compared with a bound
 * that holds on a busy emulated host).  The lost-request audit must count 0
 * under contention; the 2.6 clearing flag (kernel/lock/broken.c) must lose
 * requests (XFAIL).
 */
#include "lock_common.h"

/* A bounded wait for another CPU's step in a hand-shake. */
#define STEP_TIMEOUT_NS (2 * NSEC_PER_SEC)

/* ---- Breakable lock: the walk. */

/*
 * A walk of 400 items of 250 us (100 ms).  After each acquisition the
 * waiter asks again 40 to 100 items later, so a walk sees about six
 * requests.  The walk is long because on an emulated machine every
 * hand-over between two CPUs waits for the host to run the other vCPU
 * thread, which on a busy host takes up to tens of milliseconds: that is
 * this platform's "uniprocessor latency", and the walk must dwarf it.
 */
#define WALK_ITEMS 400
#define ITEM_US 250
#define WALKS 3
#define REQUEST_GAP_MIN_ITEMS 40
#define REQUEST_GAP_SPREAD_ITEMS 60
/*
 * Bounds.  Missed breaks, counted by the walker: after each item it looks
 * at the lock word, and if a waiter holds a ticket but the check says "no
 * break", that is a miss; the longest run of misses is how many items a
 * queued waiter waited.  The median over the walks must be at most 1 (the
 * waiter registers its request just after taking its ticket, so one check
 * may fall in between); a plain lock misses every item.  Counting checks,
 * not time, makes this exact whatever the host does.
 * Time: the plain lock's wait (median over the walks: the whole walk) must
 * exceed the breakable one's p90 wait (an item plus a hand-over) by
 * BRK_MIN_FACTOR.  The p90, not the maximum: on a busy host a vCPU thread
 * is now and then descheduled for a long while, and the waiter is then
 * stuck behind a hand-over however soon the holder stepped aside.
 */
#define BRK_MAX_MISSED 1
#define BRK_MIN_FACTOR 3
#define BRK_ATTEMPTS 3

enum walk_kind {
	WALK_PLAIN,          /* ticket lock; the holder checks need_resched() only */
	WALK_NEEDBREAK,      /* breakable lock, cond_resched_lock(): need_lockbreak() */
	WALK_CONTENDED,      /* breakable lock, cond_resched_lock_contended() */
	WALK_SPIN_NEEDBREAK, /* spinlock_t, spin_needbreak() (the contention test) */
	WALK_NESTED,         /* breakable inner lock under an outer one, on both sides */
};

static const char *const walk_names[] = {"plain", "breakable", "breakable_contended",
                                         "spinlock_needbreak", "breakable_nested"};

static struct {
	enum walk_kind kind;
	struct ticket_lock plain;
	struct brk_lock brk; /* the walked lock (the inner one when nested) */
	spinlock_t spin;
	struct brk_lock outer;    /* nested: the walker's outer lock */
	spinlock_t waiter_outer;  /* nested: held by the waiter while it spins */
	int walk, walk_done, ack; /* hand-shake: walk in progress, finished, seen done */
	uint64_t breaks;          /* the walker dropped the lock */
	bool error;
	uint64_t max_ns[WALKS], missed[WALKS], waits[WALKS];
	struct hist *h; /* every wait, ns */
} wk __cacheline_aligned;

/*
 * The walked lock.  In the nested case each side first takes an outer lock
 * of its own: the walker a breakable one, the waiter a plain spinlock, so
 * the waiter spins on the inner lock while holding another.
 */
static void walk_lock(bool walker)
{
	switch (wk.kind) {
	case WALK_PLAIN:
		ticket_lock(&wk.plain);
		break;
	case WALK_SPIN_NEEDBREAK:
		spin_lock(&wk.spin);
		break;
	case WALK_NESTED:
		if (walker)
			brk_lock(&wk.outer);
		else
			spin_lock(&wk.waiter_outer);
		/* fall through */
	default:
		brk_lock(&wk.brk);
	}
}

static void walk_unlock(bool walker)
{
	switch (wk.kind) {
	case WALK_PLAIN:
		ticket_unlock(&wk.plain);
		break;
	case WALK_SPIN_NEEDBREAK:
		spin_unlock(&wk.spin);
		break;
	case WALK_NESTED:
		brk_unlock(&wk.brk);
		if (walker)
			brk_unlock(&wk.outer);
		else
			spin_unlock(&wk.waiter_outer);
		break;
	default:
		brk_unlock(&wk.brk);
	}
}

/* The offer to step aside after each item. */
static bool walker_break(void)
{
	switch (wk.kind) {
	case WALK_PLAIN:
		/* All a plain lock's holder can ask: does this CPU need to reschedule? */
		if (!need_resched())
			return false;
		ticket_unlock(&wk.plain);
		ticket_lock(&wk.plain);
		return true;
	case WALK_CONTENDED:
		return cond_resched_lock_contended(&wk.brk);
	case WALK_SPIN_NEEDBREAK:
		if (!spin_needbreak(&wk.spin))
			return false;
		spin_unlock(&wk.spin);
		spin_lock(&wk.spin);
		return true;
	default:
		return cond_resched_lock(&wk.brk);
	}
}

static bool wait_for(int *var, int value)
{
	if (spin_until(__atomic_load_n(var, __ATOMIC_ACQUIRE) == value ||
	                   __atomic_load_n(&wk.error, __ATOMIC_RELAXED),
	               STEP_TIMEOUT_NS) &&
	    !__atomic_load_n(&wk.error, __ATOMIC_RELAXED))
		return true;
	__atomic_store_n(&wk.error, true, __ATOMIC_RELAXED);
	return false;
}

/* Does a CPU other than the holder hold a ticket for the walked lock? */
static bool walk_queued(void)
{
	uint32_t v;

	switch (wk.kind) {
	case WALK_PLAIN:
		return ticket_is_contended(&wk.plain);
	case WALK_SPIN_NEEDBREAK:
		return spin_is_contended(&wk.spin);
	default:
		/* The word itself: brk_is_contended() would count in the audit. */
		v = __atomic_load_n(&wk.brk.tl.val, __ATOMIC_ACQUIRE);
		return (uint16_t)((uint16_t)(v >> 16) - (uint16_t)v) > 1;
	}
}

static void walker(void)
{
	for (int w = 1; w <= WALKS; w++) {
		uint64_t run = 0;

		if (!wait_for(&wk.ack, w - 1))
			return;
		walk_lock(true);
		__atomic_store_n(&wk.walk, w, __ATOMIC_RELEASE);
		for (int i = 0; i < WALK_ITEMS; i++) {
			udelay(ITEM_US);
			bool queued = walk_queued();
			if (walker_break()) {
				wk.breaks++;
				run = 0;
			} else if (queued) {
				run++;
				if (run > wk.missed[w - 1])
					wk.missed[w - 1] = run;
			} else {
				run = 0;
			}
		}
		__atomic_store_n(&wk.walk_done, w, __ATOMIC_RELEASE);
		walk_unlock(true);
	}
}

static void waiter(struct lt_pcpu *pc)
{
	for (int w = 1; w <= WALKS; w++) {
		if (!wait_for(&wk.walk, w))
			return;
		while (__atomic_load_n(&wk.walk_done, __ATOMIC_ACQUIRE) < w) {
			uint64_t t0 = rdtsc_ordered(), ns;

			walk_lock(false);
			ns = tsc_to_ns(rdtsc_ordered() - t0);
			walk_unlock(false);
			hist_record(wk.h, 0, ns);
			if (ns > wk.max_ns[w - 1])
				wk.max_ns[w - 1] = ns;
			wk.waits[w - 1]++;
			/* Ask again a while later, somewhere inside another item. */
			ndelay(REQUEST_GAP_MIN_ITEMS * ITEM_US * NSEC_PER_USEC +
			       lt_rand(pc) % (REQUEST_GAP_SPREAD_ITEMS * ITEM_US * NSEC_PER_USEC));
		}
		__atomic_store_n(&wk.ack, w, __ATOMIC_RELEASE);
	}
}

static void walk_body(struct lt_run *r, int cpu, struct lt_pcpu *pc)
{
	(void)r;
	if (cpu == 1)
		walker();
	else if (cpu == 0)
		waiter(pc);
}

static uint64_t median(uint64_t *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			uint64_t t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[n / 2];
}

struct walk_result {
	uint64_t median_max_ns, worst_ns, p90_ns;    /* waits */
	uint64_t median_missed, worst_missed, waits; /* missed breaks */
};

/* WALKS walks of `kind`; false if the hand-shake broke down. */
static bool walk_run(enum walk_kind kind, struct walk_result *res)
{
	static struct hist h;
	static char path[64];
	uint64_t ns[WALKS], missed[WALKS], waits = 0;
	char extra[160];

	snprintf(path, sizeof(path), "lock.%s.walk_wait", walk_names[kind]);
	/* 100 us buckets up to 400 ms: an item is 250 us, a walk 100 ms. */
	hist_init(&h, path, "ns", HIST_LINEAR, 100 * NSEC_PER_USEC, 4000);
	memset(&wk, 0, sizeof(wk));
	wk.h = &h;
	wk.kind = kind;
	ticket_lock_init(&wk.plain);
	brk_lock_init(&wk.brk);
	brk_lock_init(&wk.outer);
	spin_lock_init(&wk.spin);
	spin_lock_init(&wk.waiter_outer);
	lock_set_name(&wk.brk.tl, "lock.walk");
	lock_set_name(&wk.outer.tl, "lock.walk_outer");
	lt_prepare(&lt, walk_body, NULL, 0);
	if (!lt_run_cpus(&lt, 2, LT_RUN_TIMEOUT_MS))
		return false;
	if (wk.error) {
		kt_fail(__FILE__, __LINE__, "%s walk: a hand-shake step timed out",
		        walk_names[kind]);
		return false;
	}
	for (int w = 0; w < WALKS; w++) {
		ns[w] = wk.max_ns[w];
		missed[w] = wk.missed[w];
		waits += wk.waits[w];
	}
	res->median_max_ns = median(ns, WALKS);
	res->worst_ns = ns[WALKS - 1];
	res->p90_ns = hist_percentile(&h, 900);
	res->median_missed = median(missed, WALKS);
	res->worst_missed = missed[WALKS - 1];
	res->waits = waits;
	snprintf(extra, sizeof(extra),
	         "worst=%lu missed=%lu worst_missed=%lu waits=%lu breaks=%lu walk=%dx%dus",
	         res->worst_ns, res->median_missed, res->worst_missed, waits, wk.breaks, WALK_ITEMS,
	         ITEM_US);
	lt_metric(walk_names[kind], "walk_max_wait_ns", (long long)res->median_max_ns, "ns", extra);
	snprintf(extra, sizeof(extra), "waits=%lu", waits);
	lt_metric(walk_names[kind], "walk_wait_ns.p50", (long long)hist_percentile(&h, 500), "ns",
	          extra);
	lt_metric(walk_names[kind], "walk_wait_ns.p90", (long long)res->p90_ns, "ns", extra);
	if (config.bench)
		hist_print(&h);
	return true;
}

/*
 * The checks of one breakable run against the plain lock's.  The exact ones
 * fail the test at once; returns whether the timing bound held.
 */
static bool check_breakable(enum walk_kind kind, const struct walk_result *plain,
                            const struct walk_result *b)
{
	char extra[64];
	/* A p90 of 0 (every wait under a bucket) counts as one bucket. */
	uint64_t p90 = b->p90_ns ? b->p90_ns : 100 * NSEC_PER_USEC;
	uint64_t ratio = lt_ratio_x1000(plain->median_max_ns, p90);

	snprintf(extra, sizeof(extra), "plain_ns=%lu p90_ns=%lu", plain->median_max_ns, b->p90_ns);
	lt_metric(walk_names[kind], "plain_over_breakable_x1000", (long long)ratio, "x1000", extra);
	if (b->median_missed > BRK_MAX_MISSED)
		kt_fail(__FILE__, __LINE__,
		        "%s: a queued waiter was refused %lu breaks in a row (bound %d)",
		        walk_names[kind], b->median_missed, BRK_MAX_MISSED);
	KT_EXPECT(wk.breaks > 0);
	if (kind != WALK_SPIN_NEEDBREAK)
		KT_EXPECT_EQ(brk_lost_requests(&wk.brk), 0);
	return ratio >= BRK_MIN_FACTOR * 1000;
}

/*
 * Walks of `kind`, compared with the plain lock's.  The timing bound gets
 * BRK_ATTEMPTS tries: a host that stalls vCPU threads for a hundred
 * milliseconds at a time (seen under heavy load) makes any hand-over that
 * slow, and such spells pass.
 */
static void breakable_case(enum walk_kind kind, const struct walk_result *plain)
{
	struct walk_result b;

	for (int attempt = 1; attempt <= BRK_ATTEMPTS && !kt_failed(); attempt++) {
		if (!walk_run(kind, &b))
			return;
		if (check_breakable(kind, plain, &b))
			return;
		kprintf("# lock: %s: p90 wait %lu ns, plain %lu ns: under %dx (attempt %d of %d)\n",
		        walk_names[kind], b.p90_ns, plain->median_max_ns, BRK_MIN_FACTOR, attempt,
		        BRK_ATTEMPTS);
	}
	kt_fail(__FILE__, __LINE__,
	        "%s: waits not %dx shorter than the plain lock's in %d attempts", walk_names[kind],
	        BRK_MIN_FACTOR, BRK_ATTEMPTS);
}

/* The plain lock's walks, measured once per boot for both tests below. */
static bool plain_walks(struct walk_result *plain)
{
	static struct walk_result cached;
	static bool valid;

	if (!valid) {
		if (!walk_run(WALK_PLAIN, &cached))
			return false;
		/* The plain lock's waiter waits for (nearly) the whole walk. */
		if (cached.median_missed < WALK_ITEMS / 2) {
			kt_fail(__FILE__, __LINE__,
			        "plain: a queued waiter waited only %lu of %d items",
			        cached.median_missed, WALK_ITEMS);
			return false;
		}
		valid = true;
	}
	*plain = cached;
	return true;
}

KTEST(lock, breakable_walk, .min_cpus = 2, .timeout_ms = 30000)
{
	static const enum walk_kind kinds[] = {WALK_NEEDBREAK, WALK_CONTENDED, WALK_SPIN_NEEDBREAK};
	struct walk_result plain;

	if (!plain_walks(&plain))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		breakable_case(kinds[i], &plain);
}

KTEST(lock, breakable_nested, .min_cpus = 2, .timeout_ms = 20000)
{
	struct walk_result plain;

	if (plain_walks(&plain))
		breakable_case(WALK_NESTED, &plain);
}

/* ---- Lost break requests: every CPU holds, breaks and waits on one lock. */

#define LOST_MS 250
#define LOST_ITEMS 8
#define LEGACY_MAX_ROUNDS 12

static struct brk_lock lost_lock __cacheline_aligned;
static struct brk_legacy_lock legacy_lock __cacheline_aligned;

/* ctx: 0 need_lockbreak, 1 contention test, 2 the legacy flag. */
static void lost_body(struct lt_run *r, int cpu, struct lt_pcpu *pc)
{
	long mode = (long)r->ctx;

	while (!lt_over(r)) {
		if (mode == 2)
			brk_legacy_lock(&legacy_lock);
		else
			brk_lock(&lost_lock);
		/* Check first, then work: a request is most easily lost right after a hand-over. */
		for (int i = 0; i < LOST_ITEMS; i++) {
			bool broke = mode == 0   ? cond_resched_lock(&lost_lock)
			             : mode == 1 ? cond_resched_lock_contended(&lost_lock)
			                         : brk_legacy_cond_resched_lock(&legacy_lock);
			pc->x[0] += broke;
			lt_exclusive_section(cpu, pc);
			pc->ops++;
		}
		if (mode == 2)
			brk_legacy_unlock(&legacy_lock);
		else
			brk_unlock(&lost_lock);
		lt_spin(lt_rand(pc) % 8);
	}
}

static uint64_t lost_run(long mode, const char *name, uint64_t *breaks)
{
	uint64_t lost, checks;
	struct lt_counts c;
	char extra[96];

	brk_lock_init(&lost_lock);
	lock_set_name(&lost_lock.tl, "lock.lost");
	brk_legacy_init(&legacy_lock);
	lt_xs.counter = 0;
	lt_xs.owner = 0;
	lt_prepare(&lt, lost_body, (void *)mode, LOST_MS);
	if (!lt_run_cpus(&lt, 0, LT_RUN_TIMEOUT_MS))
		return 0;
	c = LT_COUNT(&lt, lt.ncpus, ops);
	lt_torture_line(name, "Writes", &c, lt_exclusion_fails(&lt, lt.ncpus));
	KT_EXPECT_EQ(lt_exclusion_fails(&lt, lt.ncpus), 0);
	lost = mode == 2 ? brk_legacy_lost_requests(&legacy_lock) : brk_lost_requests(&lost_lock);
	checks = mode == 2 ? legacy_lock.audit.checks : brk_audited_checks(&lost_lock);
	*breaks = LT_SUM(&lt, lt.ncpus, x[0]);
	snprintf(extra, sizeof(extra), "cpus=%d checks=%lu breaks=%lu", lt.ncpus, checks, *breaks);
	lt_metric(name, "lost_break_requests", (long long)lost, "requests", extra);
	return lost;
}

KTEST(lock, breakable_no_lost_requests, .min_cpus = 2, .timeout_ms = 10000)
{
	uint64_t breaks;

#ifndef BRK_AUDIT
	kt_skip("built without LOCK_DEBUG: the lost-request audit is compiled out");
	return;
#endif
	KT_EXPECT_EQ(lost_run(0, "breakable", &breaks), 0);
	KT_EXPECT(breaks > 0);
	KT_EXPECT(brk_audited_checks(&lost_lock) > 0);
	KT_EXPECT_EQ(lost_run(1, "breakable_contended", &breaks), 0);
	KT_EXPECT(breaks > 0);
}

KTEST(lock, legacy_break_lock_lost, .min_cpus = 2, .timeout_ms = 15000, .flags = KT_XFAIL,
      .reason = "the 2.6 break_lock flag, cleared by each new holder, erases requests of "
                "CPUs still spinning: the lost-request audit must count them")
{
	uint64_t lost = 0, breaks;
	int round;

	for (round = 0; round < LEGACY_MAX_ROUNDS && !lost && !kt_failed(); round++)
		lost = lost_run(2, "legacy_break_lock", &breaks);
	kprintf("# lock: legacy break_lock: %lu lost requests after %d round(s)\n", lost, round);
	if (lost)
		kt_fail(__FILE__, __LINE__, "legacy break_lock lost %lu break requests", lost);
}
