/*
 * The `lock` suite, part 3: figures (KT_BENCH: run only with bench=1), for
 * every registered lock type (kernel/lock/registry.h) but the broken ones;
 * reader-writer types by their writer side, plus <type>_read/_write costs.
 *
 *   lock.<type>.uncontended_cycles   lock + unlock on one CPU, best batch
 *   lock.<type>.uncontended_floor_x1000  the same over a lone `lock xadd` (floor_xadd)
 *   lock.<type>.throughput           ops/ms with 1..N CPUs contending
 *   lock.<type>.wait                 hist block of acquisition waits, all CPUs
 *   lock.<type>.fairness_ratio_x1000 max/min acquisitions per CPU in that run
 *   lock.<pv type>.throughput_by_threshold ... threshold=T   its spin threshold swept
 *   lock.multilock_{sorted,global}.cycles      cost of taking k locks at once
 *   lock.multilock_{sorted,global}.throughput  ops/ms by CPUs and lock count
 *
 * The breakable/plain and PV/plain ratios come from lock.breakable_walk,
 * lock.breakable_nested and lock.pv_overcommit, which run in every mode.
 * Figures carry debug=1 when the lock debug options (LOCK_DEBUG, LOCK_STAT)
 * were compiled in, as they are for tests: then they include that cost.
 */
#include "lock_common.h"

/* ---- Uncontended cost. */

#define UNC_OPS 1000
#define UNC_BATCHES 7

static spinlock_t b_spin __cacheline_aligned;
static seqlock_t b_seq __cacheline_aligned;

/*
 * The floor: one `lock xadd` on a line of its own, timed by the same loop
 * first, so that every lock's cost also reads as a multiple of it
 * (lock.<type>.uncontended_floor_x1000): a figure that means the same under
 * TCG, KVM or on bare metal, where cycles do not.
 */
static uint32_t b_floor_word __cacheline_aligned;
static uint64_t unc_floor_best; /* the floor's best batch, 0 until measured */

static inline void floor_xadd(void)
{
	uint32_t one = 1;

	__asm__ __volatile__("lock xaddl %0, %1" : "+r"(one), "+m"(b_floor_word) : : "memory");
}

static void unc_floor_metric(const char *name, uint64_t best)
{
	if (!strcmp(name, "floor_xadd"))
		unc_floor_best = best;
	else if (unc_floor_best)
		lt_metric(name, "uncontended_floor_x1000",
		          (long long)(best * 1000 / unc_floor_best), "x1000",
		          "floor=lock_xadd " LT_DEBUG_TAG);
}

/* The best of UNC_BATCHES batches of UNC_OPS lock+unlock pairs, in TSC cycles per pair. */
#define UNCONTENDED(name, lock_stmt, unlock_stmt)                                            \
	do {                                                                                 \
		uint64_t best = UINT64_MAX;                                                  \
		unsigned long irq = local_irq_save();                                        \
		for (int b_ = 0; b_ < UNC_BATCHES; b_++) {                                   \
			uint64_t t0_ = rdtsc_ordered();                                      \
			for (int i_ = 0; i_ < UNC_OPS; i_++) {                               \
				lock_stmt;                                                   \
				barrier();                                                   \
				unlock_stmt;                                                 \
			}                                                                    \
			uint64_t d_ = rdtsc_ordered() - t0_;                                 \
			best = d_ < best ? d_ : best;                                        \
		}                                                                            \
		local_irq_restore(irq);                                                      \
		lt_metric(name, "uncontended_cycles", (long long)(best / UNC_OPS), "cycles", \
		          LT_DEBUG_TAG);                                                     \
		unc_floor_metric(name, best);                                                \
	} while (0)

/* The types the figures cover: every one but the deliberately broken. */
static bool bench_type(const struct lock_type *t)
{
	return !lt_broken(t);
}

/* The measuring loop around an indirect call that does nothing: what a type's call costs. */
static void nop_op(void *l)
{
	(void)l;
}
static void (*volatile nop_fn)(void *) = nop_op;

KTEST(lock, bench_uncontended, .flags = KT_BENCH, .timeout_ms = 10000)
{
	const struct lock_type *t;
	char name[48];
	unsigned long flags;
	unsigned seq;
	struct lt_lock lk;

	spin_lock_init(&b_spin);
	seqlock_init(&b_seq);

	UNCONTENDED("floor_xadd", floor_xadd(), (void)0);
	for_each_lock_type(t, pp) {
		if (!bench_type(t) || !lt_use(&lk, t, 0))
			continue;
		void *l = lk.l;

		if (t->props & LOCK_PROP_RW) {
			snprintf(name, sizeof(name), "%s_read", t->name);
			UNCONTENDED(name, t->read_lock(l), t->read_unlock(l));
			snprintf(name, sizeof(name), "%s_write", t->name);
			UNCONTENDED(name, t->lock(l), t->unlock(l));
		} else {
			UNCONTENDED(t->name, t->lock(l), t->unlock(l));
		}
	}
	/* Not lock types of their own: spinlock_t's irqsave form, the seqlock's two sides. */
	UNCONTENDED("spinlock_irqsave", spin_lock_irqsave(&b_spin, flags),
	            spin_unlock_irqrestore(&b_spin, flags));
	UNCONTENDED("seqlock_read", seq = read_seqbegin(&b_seq), (void)read_seqretry(&b_seq, seq));
	UNCONTENDED("seqlock_write", write_seqlock(&b_seq), write_sequnlock(&b_seq));
	/* The baselines: the measuring loop alone, and with the two calls a type makes. */
	UNCONTENDED("none", (void)0, (void)0);
	UNCONTENDED("none_call", nop_fn(NULL), nop_fn(NULL));
}

/* ---- Contended throughput, 1..N CPUs. */

#define THR_MS 150

/* ops/ms x1000 of `t` on CPUs 0..n-1. */
static uint64_t throughput(const struct lock_type *t, int n, uint64_t ms)
{
	static struct lt_lock lk;

	if (!lt_use(&lk, t, 0))
		return 0;
	lt_xs.counter = 0;
	lt_xs.owner = 0;
	lt_prepare(&lt, lt_exclusion_body, &lk, ms);
	if (!lt_run_cpus(&lt, n, LT_RUN_TIMEOUT_MS))
		return 0;
	KT_EXPECT_EQ(lt_exclusion_fails(&lt, n), 0);
	return LT_SUM(&lt, n, ops) * NSEC_PER_MSEC * 1000 / (lt.elapsed_ns ? lt.elapsed_ns : 1);
}

/* The PV lock's waiters halt after about this long (see lock_latency.c). */
#define PV_SPIN_NS 2000

/* Sets every PV type's spin threshold to `spins` (0: back to what it was). */
static void pv_thresholds(unsigned spins)
{
	static unsigned saved[64];
	const struct lock_type *t;
	int i = 0;

	for_each_lock_type(t, pp) {
		if (t->spin_threshold && i < (int)ARRAY_SIZE(saved)) {
			if (spins)
				saved[i] = t->spin_threshold(spins);
			else
				t->spin_threshold(saved[i]);
		}
		i++;
	}
}

KTEST(lock, bench_throughput, .flags = KT_BENCH, .timeout_ms = 180000)
{
	unsigned threshold = lt_pv_threshold_for_ns(PV_SPIN_NS);
	int ncpu = num_online_cpus();
	const struct lock_type *t;
	char extra[64], row[256];

	kprintf("# lock: throughput in ops/ms, CPUs 1..%d across (host_cpus=%d, PV "
	        "threshold=%u)\n",
	        ncpu, config.host_cpus, threshold);
	pv_thresholds(threshold);
	for_each_lock_type(t, pp) {
		if (!bench_type(t))
			continue;
		int len = snprintf(row, sizeof(row), "# %-12s", t->name);

		for (int n = 1; n <= ncpu && !kt_failed(); n++) {
			uint64_t v = throughput(t, n, THR_MS);

			snprintf(extra, sizeof(extra), "cpus=%d %s", n, LT_DEBUG_TAG);
			lt_metric_x1000(t->name, "throughput", v, "ops/ms", extra);
			if (len < (int)sizeof(row) - 12)
				len += snprintf(row + len, sizeof(row) - len, " %7lu.%lu", v / 1000,
				                v % 1000 / 100);
		}
		kprintf("%s\n", row);
	}
	pv_thresholds(0);
}

/* Each PV type on all CPUs as its spin threshold grows, its non-PV counterpart for reference. */
KTEST(lock, bench_pv_threshold, .flags = KT_BENCH, .min_cpus = 2, .timeout_ms = 60000)
{
	static const unsigned thresholds[] = {16, 64, 256, 1024, 4096, PV_SPIN_THRESHOLD};
	const struct lock_type *t, *base;
	int n = num_online_cpus();
	char extra[96];
	uint64_t v;

	for_each_lock_type(t, pp) {
		if (!(t->props & LOCK_PROP_PV) || !t->spin_threshold || !bench_type(t))
			continue;
		base = lock_type_pv_base(t);
		if (base) {
			v = throughput(base, n, 2 * THR_MS);
			snprintf(extra, sizeof(extra), "cpus=%d host_cpus=%d %s", n,
			         config.host_cpus, LT_DEBUG_TAG);
			lt_metric_x1000(base->name, "throughput_all_cpus", v, "ops/ms", extra);
		}
		unsigned saved = t->spin_threshold(thresholds[0]);
		for (size_t i = 0; i < ARRAY_SIZE(thresholds); i++) {
			t->spin_threshold(thresholds[i]);
			v = throughput(t, n, 2 * THR_MS);
			snprintf(extra, sizeof(extra), "cpus=%d host_cpus=%d threshold=%u %s", n,
			         config.host_cpus, thresholds[i], LT_DEBUG_TAG);
			lt_metric_x1000(t->name, "throughput_by_threshold", v, "ops/ms", extra);
		}
		t->spin_threshold(saved);
	}
}

/* ---- Wait histograms and fairness under saturation, all CPUs. */

#define WAIT_MS 300

static struct hist wait_hist;

static void wait_body(struct lt_run *r, int cpu, struct lt_pcpu *pc)
{
	const struct lt_lock *lk = r->ctx;

	while (!lt_over(r)) {
		uint64_t t0 = rdtsc_ordered();

		lt_acquire(lk);
		hist_record(&wait_hist, cpu, tsc_to_ns(rdtsc_ordered() - t0));
		lt_exclusive_section(cpu, pc);
		lt_release(lk);
		pc->ops++;
		lt_spin(lt_rand(pc) % 8);
	}
}

KTEST(lock, bench_wait, .flags = KT_BENCH, .timeout_ms = 60000)
{
	static char path[48];
	static struct lt_lock lk;
	const struct lock_type *t;
	char extra[96];

	for_each_lock_type(t, pp) {
		struct lt_counts c;

		if (!bench_type(t) || !lt_use(&lk, t, 0))
			continue;
		snprintf(path, sizeof(path), "lock.%s.wait", t->name);
		/* 2 us buckets up to 10 ms: a hand-over on an emulated CPU takes microseconds. */
		hist_init(&wait_hist, path, "ns", HIST_LINEAR, 2000, 5000);
		lt_xs.counter = 0;
		lt_xs.owner = 0;
		lt_prepare(&lt, wait_body, &lk, WAIT_MS);
		if (!lt_run_cpus(&lt, 0, LT_RUN_TIMEOUT_MS))
			return;
		KT_EXPECT_EQ(lt_exclusion_fails(&lt, lt.ncpus), 0);
		hist_print(&wait_hist);
		c = LT_COUNT(&lt, lt.ncpus, ops);
		snprintf(extra, sizeof(extra), "cpus=%d acquisitions=%lu %s", lt.ncpus, c.total,
		         LT_DEBUG_TAG);
		lt_metric(t->name, "fairness_ratio_x1000", (long long)lt_ratio_x1000(c.max, c.min),
		          "x1000", extra);
		lt_metric(t->name, "wait_ns.p50", (long long)hist_percentile(&wait_hist, 500), "ns",
		          extra);
		lt_metric(t->name, "wait_ns.p99", (long long)hist_percentile(&wait_hist, 990), "ns",
		          extra);
	}
}

/* ---- Multi-lock: sorted (mm_lock) against global-lock-first. */

#define ML_POOL 64
#define ML_COST_OPS 200
#define ML_THR_MS 100

struct mb_slot {
	spinlock_t lock;
	uint64_t counter;
} __cacheline_aligned;

static struct mb_slot mb_pool[ML_POOL];
static spinlock_t mb_global __cacheline_aligned;

static void mb_init(void)
{
	for (int i = 0; i < ML_POOL; i++) {
		spin_lock_init(&mb_pool[i].lock);
		lock_set_name(&mb_pool[i].lock.rlock.tl, "lock.multilock.pool");
		mb_pool[i].counter = 0;
	}
	spin_lock_init(&mb_global);
	lock_set_name(&mb_global.rlock.tl, "lock.multilock.global");
}

/* k distinct locks of the pool in random order. */
static void mb_pick(struct lt_pcpu *pc, spinlock_t **set, int k)
{
	uint64_t used = 0;

	for (int j = 0; j < k;) {
		int i = (int)(lt_rand(pc) % ML_POOL);

		if (used & (1ull << i))
			continue;
		used |= 1ull << i;
		set[j++] = &mb_pool[i].lock;
	}
}

static inline void mb_op(bool sorted, spinlock_t **set, int k)
{
	if (sorted)
		multi_lock_sorted(set, k);
	else
		multi_lock_global(&mb_global, set, k);
	for (int j = 0; j < k; j++)
		((struct mb_slot *)set[j])->counter++;
	if (sorted)
		multi_unlock_sorted(set, k);
	else
		multi_unlock_global(set, k);
}

KTEST(lock, bench_multilock_cost, .flags = KT_BENCH, .timeout_ms = 20000)
{
	static spinlock_t *orig[ML_POOL], *set[ML_POOL];
	struct lt_pcpu rng = {.rng = config.seed | 1};
	char extra[48];

	mb_init();
	for (int k = 1; k <= ML_POOL; k *= 2) {
		mb_pick(&rng, orig, k);
		for (int mode = 0; mode < 2; mode++) {
			uint64_t best = UINT64_MAX;
			unsigned long irq = local_irq_save();

			for (int b = 0; b < UNC_BATCHES; b++) {
				uint64_t t0 = rdtsc_ordered();

				for (int i = 0; i < ML_COST_OPS; i++) {
					/* The same unsorted set every time: the sort is part of the
					 * cost. */
					memcpy(set, orig, (size_t)k * sizeof(set[0]));
					mb_op(mode == 0, set, k);
				}
				uint64_t d = rdtsc_ordered() - t0;
				best = d < best ? d : best;
			}
			local_irq_restore(irq);
			snprintf(extra, sizeof(extra), "locks=%d %s", k, LT_DEBUG_TAG);
			lt_metric(mode == 0 ? "multilock_sorted" : "multilock_global", "cycles",
			          (long long)(best / ML_COST_OPS), "cycles", extra);
		}
	}
}

static void mb_body(struct lt_run *r, int cpu, struct lt_pcpu *pc)
{
	long arg = (long)r->ctx;
	bool sorted = arg < 0;
	int k = (int)(arg < 0 ? -arg : arg);
	spinlock_t *set[ML_POOL];

	(void)cpu;
	while (!lt_over(r)) {
		mb_pick(pc, set, k);
		mb_op(sorted, set, k);
		pc->ops++;
	}
}

KTEST(lock, bench_multilock_throughput, .flags = KT_BENCH, .timeout_ms = 60000)
{
	static const int counts[] = {2, 8, 32};
	int ncpu = num_online_cpus();
	char extra[64];

	for (size_t c = 0; c < ARRAY_SIZE(counts); c++) {
		/* 1, 2, 4, ... CPUs, and all of them. */
		for (int n = 1;; n = 2 * n < ncpu ? 2 * n : ncpu) {
			for (int mode = 0; mode < 2 && !kt_failed(); mode++) {
				uint64_t want = 0, got = 0;

				mb_init();
				lt_prepare(&lt, mb_body,
				           (void *)(long)(mode == 0 ? -counts[c] : counts[c]),
				           ML_THR_MS);
				if (!lt_run_cpus(&lt, n, LT_RUN_TIMEOUT_MS))
					return;
				want = LT_SUM(&lt, n, ops) * (uint64_t)counts[c];
				for (int i = 0; i < ML_POOL; i++)
					got += mb_pool[i].counter;
				KT_EXPECT_EQ(got, want);
				snprintf(extra, sizeof(extra), "cpus=%d locks=%d %s", n, counts[c],
				         LT_DEBUG_TAG);
				lt_metric_x1000(mode == 0 ? "multilock_sorted" : "multilock_global",
				                "throughput",
				                LT_SUM(&lt, n, ops) * NSEC_PER_MSEC * 1000 /
				                    (lt.elapsed_ns ? lt.elapsed_ns : 1),
				                "ops/ms", extra);
			}
			if (n == ncpu)
				break;
		}
	}
}
