/*
 * The `lock` suite, part 3: the paravirtual locks.  lock.pv_overcommit runs
 * every registered LOCK_PROP_PV type beside its non-PV counterpart
 * (registry.h: pv_of); the kick tests below are the PV ticket lock's own.
 *
 * With more vCPUs than host CPUs, a ticket lock handed to a waiter whose
 * vCPU thread is not running stalls everyone behind it; the PV lock's
 * waiters halt after a spin threshold and the unlocker kicks the next one
 * awake, giving the host CPU back meanwhile.  Throughputs and their ratio
 * are reported, not judged: how much the PV lock gains depends on how the
 * host schedules the vCPU threads, which a loaded host changes run to run
 * (make bench measures it, with its spread).  What is judged when vCPUs
 * outnumber host CPUs (config.host_cpus, from the runner) is the algorithm's
 * own behaviour: waiters halted and were kicked awake, and exclusion held.
 * A halted waiter must be woken by
 * the kick itself: its timer is stopped while it waits.  Kicks travel by
 * KVM_HC_KICK_CPU where the host offers it, else by IPI; the figures count
 * both (hc_kicks=, ipi_kicks=).  Under KVM a waiter halts at once when the
 * holder's vCPU is preempted; lock.bench_pv_preempted (bench=1) measures
 * what that is worth under overcommit.
 */
#include "kvm.h"
#include "lock_common.h"

/* A bounded wait for another CPU's step. */
#define STEP_TIMEOUT_NS (2 * NSEC_PER_SEC)

/* ---- Paravirtual ticket lock under vCPU overcommit. */

#define PV_MS 300
#define PV_ROUNDS 2
/*
 * How long a PV waiter spins before it halts, in this test: the threshold
 * is set at run time to this many nanoseconds of PAUSEs, as timed here.
 * The built-in PV_SPIN_THRESHOLD (2^15 spins) is sized for hardware, where
 * a PAUSE takes a few nanoseconds; under TCG one takes about 100 ns, and
 * 2^15 of them (some 3.5 ms) burn a good part of a host time slice before
 * the waiter gives its CPU back (lock.bench_pv_threshold, with bench=1,
 * sweeps the threshold).
 */
#define PV_SPIN_NS 2000

/* lt_exclusion_body, keeping each CPU's longest acquisition wait (wait_max, ns). */
static void waiting_body(struct lt_run *r, int cpu, struct lt_pcpu *pc)
{
	const struct lt_lock *lk = r->ctx;

	while (!lt_over(r)) {
		uint64_t t0 = rdtsc_ordered(), w;

		lt_acquire(lk);
		w = tsc_to_ns(rdtsc_ordered() - t0);
		pc->wait_max = w > pc->wait_max ? w : pc->wait_max;
		lt_exclusive_section(cpu, pc);
		lt_release(lk);
		pc->ops++;
		lt_spin(lt_rand(pc) % 8);
	}
}

/*
 * Acquisitions of `t` on all CPUs in PV_MS; adds to *ns the time it took and
 * raises *wait_max (ns) to the longest acquisition wait seen.
 */
static uint64_t throughput_run_type(const struct lock_type *t, uint64_t *ns, uint64_t *wait_max)
{
	static struct lt_lock lk;
	struct lt_counts c;

	if (!lt_use(&lk, t, 0))
		return 0;
	lt_xs.counter = 0;
	lt_xs.owner = 0;
	lt_prepare(&lt, waiting_body, &lk, PV_MS);
	if (!lt_run_cpus(&lt, 0, LT_RUN_TIMEOUT_MS))
		return 0;
	c = LT_COUNT(&lt, lt.ncpus, ops);
	lt_torture_line(t->name, "Writes", &c, lt_exclusion_fails(&lt, lt.ncpus));
	KT_EXPECT_EQ(lt_exclusion_fails(&lt, lt.ncpus), 0);
	*ns += lt.elapsed_ns;
	c = LT_COUNT(&lt, lt.ncpus, wait_max);
	*wait_max = c.max > *wait_max ? c.max : *wait_max;
	return LT_SUM(&lt, lt.ncpus, ops);
}

/* The same by the type's name. */
static __attribute__((unused)) uint64_t throughput_run(const char *name, uint64_t *ns)
{
	const struct lock_type *t = lock_type_find(name);
	uint64_t wait_max = 0;

	if (!t) {
		kt_fail(__FILE__, __LINE__, "no lock type %s", name);
		return 0;
	}
	return throughput_run_type(t, ns, &wait_max);
}

/*
 * Halts and kicks of PV type `t` since `since` was taken: the PV ticket
 * lock's own statistics (with its preempted-holder count), else the type's
 * pv_counts hook, else none.
 */
static void pv_counts(const struct lock_type *t, struct pv_stats *st, const struct pv_stats *since)
{
	memset(st, 0, sizeof(*st));
	if (!strcmp(t->name, "pvticket")) {
		pv_stats_get(st);
	} else if (t->pv_counts) {
		t->pv_counts(&st->halts, &st->kicks);
		if (since) {
			st->halts -= since->halts;
			st->kicks -= since->kicks;
		}
	}
}

/* PV type `t` and its counterpart `base` alternately on all CPUs; the throughputs' ratio x1000. */
static uint64_t pv_measure(const struct lock_type *t, const struct lock_type *base,
                           unsigned threshold, struct pv_stats *st)
{
	uint64_t plain_ops = 0, pv_ops = 0, plain_ns = 0, pv_ns = 0, ratio;
	uint64_t plain_wait = 0, pv_wait = 0;
	struct pv_stats st0;
	struct kick_stats k0, k1;
	char extra[192];

	pv_stats_reset();
	pv_counts(t, &st0, NULL);
	kick_stats_get(&k0);
	/* Alternate, so that a change in the host's load hits both alike. */
	for (int round = 0; round < PV_ROUNDS && !kt_failed(); round++) {
		plain_ops += throughput_run_type(base, &plain_ns, &plain_wait);
		unsigned saved = t->spin_threshold ? t->spin_threshold(threshold) : 0;
		pv_ops += throughput_run_type(t, &pv_ns, &pv_wait);
		if (t->spin_threshold)
			t->spin_threshold(saved);
	}
	pv_counts(t, st, &st0);
	kick_stats_get(&k1);
	snprintf(extra, sizeof(extra), "cpus=%d host_cpus=%d ops=%lu", num_online_cpus(),
	         config.host_cpus, plain_ops);
	lt_metric_x1000(base->name, "overcommit_throughput",
	                plain_ops * NSEC_PER_MSEC * 1000 / (plain_ns ? plain_ns : 1), "ops/ms",
	                extra);
	snprintf(extra, sizeof(extra), "cpus=%d host_cpus=%d ops=%lu threshold=%u",
	         num_online_cpus(), config.host_cpus, pv_ops, threshold);
	lt_metric(base->name, "overcommit_wait_max_ns", (long long)plain_wait, "ns", extra);
	lt_metric_x1000(t->name, "overcommit_throughput",
	                pv_ops * NSEC_PER_MSEC * 1000 / (pv_ns ? pv_ns : 1), "ops/ms", extra);
	lt_metric(t->name, "overcommit_wait_max_ns", (long long)pv_wait, "ns", extra);
	/* (pv_ops / pv_time) / (plain_ops / plain_time), times in us to stay in 64 bits. */
	ratio = lt_ratio_x1000(pv_ops * (plain_ns / 1000 + 1), plain_ops * (pv_ns / 1000 + 1));
	snprintf(extra, sizeof(extra),
	         "cpus=%d host_cpus=%d threshold=%u halts=%lu kicks=%lu hc_kicks=%lu ipi_kicks=%lu "
	         "preempted=%lu",
	         num_online_cpus(), config.host_cpus, threshold, st->halts, st->kicks,
	         k1.hypercall - k0.hypercall, k1.ipi - k0.ipi, st->preempted);
	lt_metric(t->name, "pv_over_plain_x1000", (long long)ratio, "x1000", extra);
	return ratio;
}

static void pv_overcommit_one(struct lt_sub *s, const struct lock_type *t, unsigned threshold)
{
	const struct lock_type *base = lock_type_pv_base(t);
	struct pv_stats st;
	uint64_t ratio;

	if (!base) {
		lt_sub_fail(s, t, "no non-PV counterpart (pv_of %s)",
		            t->pv_of ? t->pv_of : "unset");
		lt_sub_end(s, t, NULL);
		return;
	}
	ratio = pv_measure(t, base, threshold, &st);
	if (!lt_overcommitted()) {
		lt_sub_end(s, t, "not overcommitted: no waiter needs to halt");
		return;
	}
	/* The gain is a timing figure (pv_over_plain_x1000 above); it is said, not judged. */
	kprintf("# lock: %s over %s under overcommit: %lu.%03lux the throughput (a timing "
	        "ratio, reported)\n",
	        t->name, base->name, ratio / 1000, ratio % 1000);
	if (!strcmp(t->name, "pvticket") || t->pv_counts) {
		if (!st.halts)
			lt_sub_fail(s, t, "no waiter halted");
		if (!st.kicks)
			lt_sub_fail(s, t, "no waiter was kicked");
	}
	lt_sub_end(s, t, NULL);
}

KTEST(lock, pv_overcommit, .min_cpus = 2, .timeout_ms = 60000)
{
	const struct lock_type *t;
	unsigned threshold;
	struct lt_sub s;
	int n = 0;

	if (config.host_cpus <= 0) {
		kt_skip("host CPU count unknown (host_cpus= not given): cannot tell whether vCPUs "
		        "are overcommitted");
		return;
	}
	if (!lt_overcommitted())
		kprintf("# lock: %d vCPUs on %d host CPUs, not overcommitted: halts and kicks "
		        "not judged\n",
		        num_online_cpus(), config.host_cpus);
	threshold = lt_pv_threshold_for_ns(PV_SPIN_NS);
	for_each_lock_type(t, pp) {
		n += (t->props & LOCK_PROP_PV) && !lt_broken(t);
	}
	lt_sub_begin(&s, n);
	for_each_lock_type(t, pp) {
		if ((t->props & LOCK_PROP_PV) && !lt_broken(t))
			pv_overcommit_one(&s, t, threshold);
	}
}

/* ---- A halted PV waiter is woken by the unlocker's kick, not by its timer. */

#define KICK_ROUNDS 3
#define KICK_THRESHOLD 64
#define KICK_WAKE_TIMEOUT_NS (500 * NSEC_PER_MSEC)

static struct {
	struct pv_lock lock;
	int ready, done;
	uint64_t acquired_tsc;
} kk __cacheline_aligned;

static void kick_waiter(void *arg)
{
	(void)arg;
	lapic_timer_stop(); /* nothing but the kick may end the halt */
	__atomic_store_n(&kk.ready, 1, __ATOMIC_RELEASE);
	pv_lock(&kk.lock);
	kk.acquired_tsc = rdtsc_ordered();
	pv_unlock(&kk.lock);
	timer_cpu_init();
	__atomic_store_n(&kk.done, 1, __ATOMIC_RELEASE);
}

KTEST(lock, pv_kick_wakes_halted, .min_cpus = 2, .timeout_ms = 20000)
{
	static struct hist h;
	unsigned saved = pv_spin_threshold;
	int cpu, rounds = 0;
	struct pv_stats st;
	struct kick_stats k0, k1;
	char extra[96];

	hist_init(&h, "lock.pvticket.kick_wake", "ns", HIST_LINEAR, 10000, 1000);
	pv_spin_threshold = KICK_THRESHOLD;
	pv_stats_reset();
	kick_stats_get(&k0);
	for_each_online_cpu(cpu) {
		if (cpu == 0)
			continue;
		for (int k = 0; k < KICK_ROUNDS && !kt_failed(); k++) {
			pv_lock_init(&kk.lock);
			lock_set_name(&kk.lock, "lock.kick");
			kk.ready = kk.done = 0;
			pv_lock(&kk.lock);
			pv_stats_get(&st);
			uint64_t halts = st.halts;
			if (smp_launch(cpu, kick_waiter, NULL) != 0) {
				pv_unlock(&kk.lock);
				kt_fail(__FILE__, __LINE__, "CPU %d cannot be launched", cpu);
				break;
			}
			/* Let it spin out its threshold and halt (or at least decide to). */
			bool halted =
			    spin_until((pv_stats_get(&st), st.halts > halts), STEP_TIMEOUT_NS);
			mdelay(1);
			uint64_t t0 = rdtsc_ordered();
			pv_unlock(&kk.lock);
			bool woke = spin_until(__atomic_load_n(&kk.done, __ATOMIC_ACQUIRE),
			                       KICK_WAKE_TIMEOUT_NS);
			if (!halted)
				kt_fail(__FILE__, __LINE__, "CPU %d never took the halt path", cpu);
			if (!woke) {
				kt_fail(__FILE__, __LINE__,
				        "CPU %d halted on the PV lock was not woken "
				        "by the kick within %lu ms",
				        cpu, KICK_WAKE_TIMEOUT_NS / NSEC_PER_MSEC);
				arch_kick_cpu(cpu); /* rescue it for the tests after this one */
			}
			if (!smp_wait_launched(cpu, 1000))
				kt_fail(__FILE__, __LINE__, "CPU %d did not return", cpu);
			if (woke && halted) {
				hist_record(&h, cpu, tsc_to_ns(kk.acquired_tsc - t0));
				rounds++;
			}
		}
	}
	pv_spin_threshold = saved;
	pv_stats_get(&st);
	kick_stats_get(&k1);
	hist_print(&h);
	snprintf(extra, sizeof(extra), "rounds=%d kicks=%lu hc_kicks=%lu ipi_kicks=%lu", rounds,
	         st.kicks, k1.hypercall - k0.hypercall, k1.ipi - k0.ipi);
	kprintf("  # lock: kicks by %s: %lu by hypercall, %lu by IPI\n", kick_method(),
	        k1.hypercall - k0.hypercall, k1.ipi - k0.ipi);
	lt_metric("pvticket", "kick_wake_ns.p50", (long long)hist_percentile(&h, 500), "ns", extra);
	lt_metric("pvticket", "kick_wake_ns.max", (long long)hist_max(&h), "ns", extra);
	KT_EXPECT(st.kicks >= (uint64_t)rounds);
	/* Every kick went the chosen way: no hypercall that failed into an IPI. */
	if (strcmp(kick_method(), "IPI") != 0)
		KT_EXPECT_EQ(k1.ipi - k0.ipi, 0);
	else
		KT_EXPECT_EQ(k1.hypercall - k0.hypercall, 0);
}

/* ---- Halting at once on a preempted holder, against spinning the threshold out. */

KTEST(lock, bench_pv_preempted, .flags = KT_BENCH, .min_cpus = 2, .timeout_ms = 60000)
{
	static const char *const mode_name[2] = {"spin", "halt"};
	uint64_t ops[2] = {0}, ns[2] = {0}, preempted[2] = {0}, steal[2] = {0};
	bool saved = pv_halt_on_preempted;
	struct pv_stats st;
	char extra[160];

	if (!steal_time_enabled()) {
		kt_skip("no steal-time area (not on KVM): no vCPU is ever seen preempted");
		return;
	}
	/* Alternate, so that a change in the host's load hits both alike. */
	for (int round = 0; round < 2 * PV_ROUNDS && !kt_failed(); round++) {
		int halt = round & 1;
		uint64_t s0 = steal_time_total_ns();

		pv_halt_on_preempted = halt;
		pv_stats_reset();
		ops[halt] += throughput_run("pvticket", &ns[halt]);
		pv_stats_get(&st);
		preempted[halt] += st.preempted;
		steal[halt] += steal_time_total_ns() - s0;
	}
	pv_halt_on_preempted = saved;
	for (int halt = 0; halt < 2; halt++) {
		char what[48];

		snprintf(extra, sizeof(extra),
		         "cpus=%d host_cpus=%d ops=%lu threshold=%u preempted=%lu run_steal_ns=%lu",
		         num_online_cpus(), config.host_cpus, ops[halt], pv_spin_threshold,
		         preempted[halt], steal[halt]);
		snprintf(what, sizeof(what), "preempted_holder_%s_throughput", mode_name[halt]);
		lt_metric_x1000("pvticket", what,
		                ops[halt] * NSEC_PER_MSEC * 1000 / (ns[halt] ? ns[halt] : 1),
		                "ops/ms", extra);
	}
	snprintf(extra, sizeof(extra), "cpus=%d host_cpus=%d", num_online_cpus(), config.host_cpus);
	lt_metric(
	    "pvticket", "preempted_halt_over_spin_x1000",
	    (long long)lt_ratio_x1000(ops[1] * (ns[0] / 1000 + 1), ops[0] * (ns[1] / 1000 + 1)),
	    "x1000", extra);
}
