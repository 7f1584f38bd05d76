/*
 * The `sched` suite, continued: what idle CPUs do.  An idle CPU must take
 * work from a busy one, and otherwise cost nothing, not even a timer
 * interrupt.  The harness runs a suite's files in name order, so these
 * tests come after sched_tests.c's and before sched_tests_pi.c's.
 */
#include "cmdline.h"
#include "cpu.h"
#include "kernel.h"
#include "ktest.h"
#include "sched.h"
#include "sched_tests.h"
#include "smp.h"
#include "time.h"
#include "x86.h"

/* ---- Work conservation: N busy threads on N CPUs all run at once. */

/*
 * Long enough to outlast an emulated CPU's wake-up: a halted vCPU's host
 * thread can wait 100 ms and more for a host CPU when vCPUs outnumber them.
 */
#define WC_BUSY_MS 400
#define WC_SAMPLES 16
/* Guest time the others must have run while a late thread waited, to judge it (below). */
#define WC_JUDGE_MS 200

static struct {
	volatile uint64_t start[64], end[64];
	volatile int cpu[64];
	volatile int trace[64][WC_SAMPLES];
	volatile uint64_t when[64][WC_SAMPLES];
} wc;

static void wc_worker(void *arg)
{
	int i = (int)(uintptr_t)arg;
	wc.start[i] = rdtsc();
	for (int k = 0; k < WC_SAMPLES; k++) {
		wc.when[i][k] = rdtsc();
		wc.trace[i][k] = smp_processor_id();
		busy_until(wc.start[i] + ms_tsc(WC_BUSY_MS * (k + 1) / WC_SAMPLES));
	}
	wc.end[i] = rdtsc();
}

/* Returns false when the host's stalls, measured in the run, leave it undecided. */
static bool check_concurrent(int n, const char *how)
{
	uint64_t last_start = 0, first_start = UINT64_MAX, first_end = UINT64_MAX;
	cpumask_t used;

	cpumask_clear(&used);
	for (int i = 0; i < n; i++) {
		if (wc.start[i] > last_start)
			last_start = wc.start[i];
		if (wc.start[i] < first_start)
			first_start = wc.start[i];
		if (wc.end[i] < first_end)
			first_end = wc.end[i];
	}
	/*
	 * Where each ran while all of them were still busy: its last sample
	 * before the first one finished (an exit lets a waker in and threads
	 * move).  By time, not by sample number: the host may stop a vCPU for
	 * a while, and its thread then samples late.
	 */
	for (int i = 0; i < n; i++) {
		wc.cpu[i] = wc.trace[i][0];
		for (int k = 0; k < WC_SAMPLES; k++)
			if ((int64_t)(wc.when[i][k] - first_end) < 0)
				wc.cpu[i] = wc.trace[i][k];
		cpumask_set_cpu(wc.cpu[i], &used);
	}
	/*
	 * The host's interference in this run: the longest a busy thread's
	 * vCPU went without running (a gap between samples beyond their
	 * period; 1 s seen on a 2-CPU host under heavy load), and how long the
	 * others really ran while the last one waited to start (their time in
	 * that stretch less such gaps).  A kick is repeated by every busy tick
	 * (timer.c), so a thread that started only after another finished is
	 * judged when the others ran at least WC_JUDGE_MS meanwhile; with less,
	 * the host stopped the guest for most of that wait, and an idle vCPU it
	 * does not run cannot take work: that run decides nothing, and says so.
	 */
	uint64_t stall = 0, progress = 0, period = ms_tsc(WC_BUSY_MS / WC_SAMPLES);
	for (int i = 0; i < n; i++) {
		uint64_t lost = 0, until = wc.end[i] < last_start ? wc.end[i] : last_start;
		for (int k = 1; k < WC_SAMPLES; k++) {
			uint64_t gap = wc.when[i][k] - wc.when[i][k - 1];
			if (gap <= period)
				continue;
			if (gap - period > stall)
				stall = gap - period;
			if ((int64_t)(wc.when[i][k] - until) <= 0)
				lost += gap - period;
		}
		uint64_t ran = (int64_t)(until - wc.start[i]) > 0 ? until - wc.start[i] : 0;
		ran = ran > lost ? ran - lost : 0;
		if (wc.start[i] != last_start && ran > progress)
			progress = ran;
	}
	kprintf("  # %s: %d busy threads on %d CPUs; the last started %ld us %s the first "
	        "finished; longest host stall of a busy one %lu us\n",
	        how, n, cpumask_weight(&used),
	        (long)(tsc_to_ns(last_start > first_end ? last_start - first_end
	                                                : first_end - last_start) /
	               1000),
	        last_start > first_end ? "after" : "before", tsc_to_ns(stall) / 1000);
	if (last_start > first_end && progress < ms_tsc(WC_JUDGE_MS)) {
		kprintf(
		    "  # %s: not judged: while the last one waited %lu us, the others ran %lu us "
		    "(the host stopped them the rest), under %d ms\n",
		    how, tsc_to_ns(last_start - first_start) / 1000, tsc_to_ns(progress) / 1000,
		    WC_JUDGE_MS);
		return false;
	}
	if (last_start > first_end)
		kt_fail(__FILE__, __LINE__, "%s: a thread waited for another to finish", how);
	KT_EXPECT_EQ(cpumask_weight(&used), n);
	if (cpumask_weight(&used) == n)
		return true;
	for (int i = 0; i < n; i++) {
		char trace[WC_SAMPLES + 1];
		for (int k = 0; k < WC_SAMPLES; k++)
			trace[k] = (char)('0' + wc.trace[i][k] % 10);
		trace[WC_SAMPLES] = '\0';
		kprintf("  # thread %d: started at %ld us, on CPUs %s (every %d ms)\n", i,
		        (long)(tsc_to_ns(wc.start[i] - wc.start[0]) / 1000), trace,
		        WC_BUSY_MS / WC_SAMPLES);
	}
	return true;
}

KTEST(sched, work_conservation, .min_cpus = 2, .timeout_ms = 20000)
{
	int n = num_online_cpus() < 64 ? num_online_cpus() : 64;
	struct thread *t[64];
	cpumask_t all;
	int cpu;

	/* Placement: started from here, they spread over the CPUs. */
	memset(&wc, 0, sizeof(wc));
	for (int i = 0; i < n; i++)
		t[i] = thread_run(wc_worker, (void *)(uintptr_t)i, "wc", PRIO_BUSY, THREAD_ANY_CPU);
	join_all(t, n);
	bool judged = check_concurrent(n, "placed");

	/* Balancing: all queued on this CPU, then let go; idle CPUs must pull them. */
	memset(&wc, 0, sizeof(wc));
	cpumask_clear(&all);
	for_each_online_cpu(cpu)
		cpumask_set_cpu(cpu, &all);
	for (int i = 0; i < n; i++)
		t[i] = thread_run(wc_worker, (void *)(uintptr_t)i, "wc-pull", PRIO_BUSY,
		                  smp_processor_id());
	for (int i = 0; i < n; i++)
		KT_EXPECT_EQ(thread_set_affinity(t[i], &all), 0);
	join_all(t, n);
	if (!check_concurrent(n, "pulled") && !judged)
		kt_skip("host stalls of vCPUs as long as the test: inconclusive");
}

/* ---- An idle CPU takes no timer interrupt; a sleeping thread's CPU only its deadlines. */

static struct {
	volatile int blocked;
	/* Timer interrupts of the sleeper's CPU from its start to its last wake-up. */
	volatile uint64_t fired;
	/* Busy ticks a host stall of the running sleeper accounts for (see below). */
	volatile uint64_t stall_ticks;
} nohz;

/*
 * Counted by the sleeper itself, from its start to its last wake-up: after
 * it exits, its idle CPU may rightly poll for the test thread that CPU 0
 * has queued but not yet run (idle.c, arm_pull_retry), for as long as the
 * host leaves CPU 0's vCPU waiting: that is the balancer at work, not a tick.
 * While the sleeper runs, its CPU's busy tick is armed: when the host stops
 * the vCPU for a tick period or more between a deadline and the next sleep,
 * that tick fires, and the sleeper, timing that stretch, counts it.
 */
static void nohz_sleeper(void *arg)
{
	(void)arg;
	int me = smp_processor_id();
	uint64_t tick = ns_to_tsc(NSEC_PER_SEC / TICK_HZ);
	uint64_t f0 = lapic_timer_fired(me, NULL);
	uint64_t next = rdtsc(), awake_from = next;
	for (int i = 0; i < 5; i++) {
		next += ms_tsc(30);
		uint64_t now = rdtsc();
		nohz.stall_ticks += (now - awake_from) / tick;
		if ((int64_t)(now - next) < 0)
			nohz.blocked++; /* a late start (host stall) may leave nothing to sleep */
		sleep_until(next);
		awake_from = next; /* its wake-up interrupt came at the deadline or later */
	}
	nohz.fired = lapic_timer_fired(me, NULL) - f0;
}

KTEST(sched, tickless_idle, .min_cpus = 2, .timeout_ms = 10000)
{
	uint64_t before[MAX_CPUS < 64 ? MAX_CPUS : 64], retries[MAX_CPUS < 64 ? MAX_CPUS : 64];
	int cpu, n = num_online_cpus() < 64 ? num_online_cpus() : 64, noisy = 0;
	struct sched_stats st;

	/*
	 * An idle CPU may take one kind of timer event: the balancer's look
	 * again at a CPU that has a thread queued but is itself between idle
	 * and running it, or whose queue lock is held (idle.c).  On a loaded
	 * host a vCPU stopped in that state keeps others looking, every 2 ms:
	 * those are counted by the scheduler and not held against the tick.
	 * Counted from before the settling, so a retry armed then that fires
	 * in the window is among them.
	 */
	for (cpu = 1; cpu < n; cpu++) {
		sched_get_stats(cpu, &st);
		retries[cpu] = st.pull_retries;
	}
	msleep(20); /* let the APs settle into their idle loops */
	for (cpu = 1; cpu < n; cpu++)
		before[cpu] = lapic_timer_fired(cpu, NULL);
	mdelay(300); /* this CPU busy: its tick runs; the others idle */
	for (cpu = 1; cpu < n; cpu++) {
		uint64_t ticks = lapic_timer_fired(cpu, NULL) - before[cpu];
		sched_get_stats(cpu, &st);
		uint64_t looks = st.pull_retries - retries[cpu];
		if (ticks) {
			kprintf("  # CPU %d took %lu timer interrupts while idle, the balancer "
			        "armed %lu "
			        "looks at a busy CPU\n",
			        cpu, ticks, looks);
			if (ticks > looks)
				noisy++;
		}
	}
	KT_EXPECT_EQ(noisy, 0);

	/*
	 * A thread sleeping five times 30 ms on CPU t: one expiry each (an
	 * early one re-arms: a few more), where a periodic tick would take 15.
	 */
	int t = target_cpu();
	memset(&nohz, 0, sizeof(nohz));
	struct thread *s = thread_run(nohz_sleeper, NULL, "nohz", PRIO_HIGH, t);
	join_all(&s, 1);
	uint64_t fired = nohz.fired, bound = 2 * nohz.blocked + nohz.stall_ticks;
	char extra[64];
	snprintf(extra, sizeof(extra), "cpu=%d sleeps=%d stall_ticks=%lu", t, nohz.blocked,
	         nohz.stall_ticks);
	kt_metric("sched.tickless.sleeper_interrupts", (long long)fired, "interrupts", extra);
	if (nohz.stall_ticks)
		kprintf("  # bound %lu: 2 per sleep and %lu busy ticks of host stalls of the "
		        "running sleeper\n",
		        bound, nohz.stall_ticks);
	KT_EXPECT(fired >= (uint64_t)nohz.blocked);
	KT_EXPECT_LE(fired, bound);
}

/* The watchdog leaves idle, tickless CPUs alone (runs for longer than its threshold). */
KTEST(sched, idle_watchdog_quiet, .flags = KT_MANUAL, .min_cpus = 2, .timeout_ms = 30000)
{
	uint64_t ms = 2 * WATCHDOG_THRESHOLD_MS;
	if (config.host_cpus > 0 && num_online_cpus() > config.host_cpus)
		ms *= (uint64_t)(num_online_cpus() + config.host_cpus - 1) / config.host_cpus;
	kprintf("  # every CPU idle for %lu ms, past the watchdog's threshold\n", ms);
	msleep(ms);
	for (int cpu = 1; cpu < ncpus; cpu++)
		KT_EXPECT(sched_cpu_idle(cpu));
}
