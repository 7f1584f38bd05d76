/*
 * The `sched` suite: threads, priorities, the preemption models, sleeping,
 * wait queues, affinity and migration, work conservation, the tickless
 * idle CPU, and the rt-mutex (priority inheritance, transitive, deadlock
 * detection).  The wake-up latency benchmark is in sched_bench.c.
 *
 * What each model allows is checked exactly, by where a woken thread of
 * higher priority finds a busy lower-priority one when it first runs: in
 * a preempt_disable() or spinlock section (never), in the middle of plain
 * code (full and rt: yes), at a cond_resched() (voluntary: exactly there),
 * or already finished (none).  Host stalls of an emulated CPU stretch
 * times, never orderings, so the checks are about orderings; times are
 * reported as metrics.  Tests that need a given model SKIP under the
 * others, saying why: the matrix runs the suite under each model.
 *
 * Threads of a test run on one target CPU (the last one, or CPU 0 alone)
 * at priorities around the test thread's (SCHED_PRIO_DEFAULT): below it
 * they wait until the test thread blocks in thread_join().
 */
#include "cmdline.h"
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "ktest.h"
#include "sched.h"
#include "smp.h"
#include "time.h"
#include "x86.h"

#define cpu_relax lock_arch_cpu_relax
#include "lock/spinlock.h"
#undef cpu_relax

#define JOIN_MS 5000
#define PRIO_LOW 2
#define PRIO_BUSY 5
#define PRIO_MID 12
#define PRIO_HIGH 20

static int target_cpu(void)
{
	return ncpus - 1; /* CPU 0 when it is alone */
}

static uint64_t ms_tsc(uint64_t ms)
{
	return ns_to_tsc(ms * NSEC_PER_MSEC);
}

static void busy_until(uint64_t tsc)
{
	while ((int64_t)(rdtsc() - tsc) < 0)
		cpu_relax();
}

static bool model_preempts(void)
{
	return sched_model() == PREEMPT_FULL || sched_model() == PREEMPT_RT;
}

static void join_all(struct thread **t, int n)
{
	for (int i = 0; i < n; i++) {
		if (t[i] && !thread_join(t[i], JOIN_MS)) {
			kt_fail(__FILE__, __LINE__, "thread %s did not exit within %d ms",
			        t[i]->name, JOIN_MS);
			sched_dump_threads();
		}
	}
}

/* A one-shot event threads can sleep on. */
struct event {
	volatile int set;
	struct wait_queue wq;
};

static void event_init(struct event *e)
{
	e->set = 0;
	wait_queue_init(&e->wq);
}

static void event_set(struct event *e)
{
	__atomic_store_n(&e->set, 1, __ATOMIC_RELEASE);
	wake_up(&e->wq);
}

static bool event_wait(struct event *e, uint64_t ms)
{
	return wait_event_until(e->wq, __atomic_load_n(&e->set, __ATOMIC_ACQUIRE),
	                        rdtsc() + ms_tsc(ms));
}

/* Poll (sleeping) for a condition another CPU or thread makes true. */
#define poll_until(cond, ms)                                               \
	({                                                                 \
		uint64_t __end = rdtsc() + ms_tsc(ms);                     \
		bool __ok;                                                 \
		while (!(__ok = (cond)) && (int64_t)(rdtsc() - __end) < 0) \
			msleep(1);                                         \
		__ok;                                                      \
	})

/* ---- Threads run, report their CPU, exit and are joined. */

static volatile int run_count;
static volatile int run_cpu[64];

static void count_worker(void *arg)
{
	int i = (int)(uintptr_t)arg;
	run_cpu[i] = smp_processor_id();
	__atomic_fetch_add(&run_count, 1, __ATOMIC_RELAXED);
}

KTEST(sched, threads_run_and_join, .timeout_ms = 10000)
{
	struct thread *t[32];
	int n = 32, cpus_used = 0;
	cpumask_t seen;

	run_count = 0;
	cpumask_clear(&seen);
	for (int i = 0; i < n; i++) {
		t[i] = thread_run(count_worker, (void *)(uintptr_t)i, "count", PRIO_BUSY,
		                  THREAD_ANY_CPU);
		KT_EXPECT(t[i] != NULL);
	}
	join_all(t, n);
	KT_EXPECT_EQ(run_count, n);
	for (int i = 0; i < n; i++)
		cpumask_set_cpu(run_cpu[i], &seen);
	cpus_used = cpumask_weight(&seen);
	kprintf("  # %d threads ran on %d of %d CPUs\n", n, cpus_used, num_online_cpus());
	KT_EXPECT(cpus_used >= 1);
	KT_EXPECT_EQ(this_thread()->id, 0);
	KT_EXPECT_STREQ(this_thread()->name, "main");
}

/* ---- Higher priority first; FIFO among equals. */

static volatile int order_next;
static volatile int order_seen[8];

static void order_worker(void *arg)
{
	order_seen[__atomic_fetch_add(&order_next, 1, __ATOMIC_RELAXED)] = (int)(uintptr_t)arg;
}

KTEST(sched, priority_order, .timeout_ms = 10000)
{
	/* Threads (index -> priority) queued on our own CPU while we still run. */
	static const int prio[8] = {1, 4, 2, 9, 4, 7, 1, 3};
	static const int want[8] = {3, 5, 1, 4, 7, 2, 0, 6};
	struct thread *t[8];

	order_next = 0;
	for (int i = 0; i < 8; i++) {
		t[i] = thread_run(order_worker, (void *)(uintptr_t)i, "order", prio[i],
		                  smp_processor_id());
		KT_EXPECT(t[i] != NULL);
	}
	KT_EXPECT_EQ(order_next, 0); /* all below us: none ran yet, in any model */
	join_all(t, 8);
	for (int i = 0; i < 8; i++)
		if (order_seen[i] != want[i])
			kt_fail(__FILE__, __LINE__, "run %d was thread %d (prio %d), expected %d",
			        i, order_seen[i], prio[order_seen[i]], want[i]);
}

/* ---- A preempt_disable() (or spinlock) section is never switched out. */

enum section_kind { SECTION_PREEMPT_OFF, SECTION_SPINLOCK, SECTION_RAW_SPINLOCK };

static struct {
	enum section_kind kind;
	spinlock_t lock;
	raw_spinlock_t raw;
	struct thread *high;
	volatile int in_section, a_done;
	volatile int saw_in_section, saw_a_done;
	volatile uint64_t t_leave, t_high;
} sec;

static void section_high(void *arg)
{
	(void)arg;
	sec.t_high = rdtsc();
	sec.saw_in_section = sec.in_section;
	sec.saw_a_done = sec.a_done;
}

static void section_busy(void *arg)
{
	(void)arg;
	switch (sec.kind) {
	case SECTION_PREEMPT_OFF:
		preempt_disable();
		break;
	case SECTION_SPINLOCK:
		spin_lock(&sec.lock);
		break;
	case SECTION_RAW_SPINLOCK:
		raw_spin_lock(&sec.raw);
		break;
	}
	sec.in_section = 1;
	thread_start(sec.high); /* higher priority, same CPU: wants the CPU now */
	busy_until(rdtsc() + ms_tsc(40));
	sec.in_section = 0;
	sec.t_leave = rdtsc();
	switch (sec.kind) {
	case SECTION_PREEMPT_OFF:
		preempt_enable();
		break;
	case SECTION_SPINLOCK:
		spin_unlock(&sec.lock);
		break;
	case SECTION_RAW_SPINLOCK:
		raw_spin_unlock(&sec.raw);
		break;
	}
	busy_until(rdtsc() + ms_tsc(20));
	sec.a_done = 1;
}

/* Run one section; returns whether the high thread ran inside it. */
static bool run_section(enum section_kind kind, const char *what, bool expect_inside)
{
	int cpu = target_cpu();

	memset((void *)&sec.in_section, 0, sizeof(sec) - offsetof(typeof(sec), in_section));
	sec.kind = kind;
	spin_lock_init(&sec.lock);
	raw_spin_lock_init(&sec.raw);
	sec.high = thread_create(section_high, NULL, "sec-high", PRIO_HIGH, cpu);
	struct thread *a = thread_run(section_busy, NULL, "sec-busy", PRIO_BUSY, cpu);
	KT_EXPECT(sec.high && a);
	struct thread *t[2] = {a, sec.high};
	join_all(t, 2);
	bool inside = sec.saw_in_section;
	bool after_leave = (int64_t)(sec.t_high - sec.t_leave) >= 0;
	kprintf("  # %s (preempt=%s): the woken thread ran %s the section%s\n", what,
	        preempt_name(sched_model()), inside ? "inside" : "after",
	        sec.saw_a_done ? ", once the busy thread had finished" : "");
	if (inside != expect_inside)
		kt_fail(__FILE__, __LINE__, "%s: woken thread ran %s the section, expected %s",
		        what, inside ? "inside" : "after", expect_inside ? "inside" : "after");
	if (!inside && !after_leave)
		kt_fail(__FILE__, __LINE__, "%s: woken thread ran before the section ended", what);
	return inside;
}

KTEST(sched, preempt_disable_holds, .timeout_ms = 10000)
{
	run_section(SECTION_PREEMPT_OFF, "preempt_disable", false);
	/* full and rt: switched at preempt_enable(), before the busy thread's next 20 ms. */
	bool want_done = !model_preempts();
	if (sec.saw_a_done != want_done)
		kt_fail(__FILE__, __LINE__,
		        "preempt=%s: woken thread ran %s the busy thread finished, expected %s",
		        preempt_name(sched_model()), sec.saw_a_done ? "after" : "before",
		        want_done ? "after" : "before (at preempt_enable)");
	if (model_preempts()) {
		char extra[64];
		snprintf(extra, sizeof(extra), "model=%s", preempt_name(sched_model()));
		kt_metric("sched.preempt_enable_to_switch_ns",
		          (long long)tsc_to_ns(sec.t_high - sec.t_leave), "ns", extra);
	}
}

/* spinlock_t sections: not preemptible, except under rt where it is a sleeping lock. */
KTEST(sched, spinlock_sections, .timeout_ms = 10000)
{
	run_section(SECTION_RAW_SPINLOCK, "raw_spinlock_t", false);
	run_section(SECTION_SPINLOCK, "spinlock_t", sched_model() == PREEMPT_RT);
}

/* ---- Where each model switches: a busy thread with one cond_resched() point. */

static struct {
	volatile int phase; /* 1 busy, 2 at the cond_resched() point, 3 busy, 4 done */
	volatile uint64_t deadline, a_start;
	volatile int saw_phase;
	volatile int high_ready;
	volatile uint64_t t_high;
} pp;

static void points_high(void *arg)
{
	(void)arg;
	pp.deadline = rdtsc() + ms_tsc(30);
	__atomic_store_n(&pp.high_ready, 1, __ATOMIC_RELEASE);
	sleep_until(pp.deadline);
	pp.t_high = rdtsc();
	pp.saw_phase = pp.phase;
}

static void points_busy(void *arg)
{
	(void)arg;
	pp.a_start = rdtsc();
	pp.phase = 1;
	busy_until(pp.deadline + ms_tsc(80)); /* the deadline falls in here */
	pp.phase = 2;
	cond_resched();
	pp.phase = 3;
	busy_until(rdtsc() + ms_tsc(20));
	pp.phase = 4;
}

KTEST(sched, preemption_points, .timeout_ms = 10000)
{
	static const char *const phase_name[] = {"?", "plain code", "cond_resched()",
	                                         "after cond_resched()", "the end"};
	int cpu = target_cpu(), want;

	memset(&pp, 0, sizeof(pp));
	struct thread *h = thread_run(points_high, NULL, "pp-high", PRIO_HIGH, cpu);
	KT_EXPECT(h != NULL);
	if (!poll_until(__atomic_load_n(&pp.high_ready, __ATOMIC_ACQUIRE), 2000)) {
		kt_fail(__FILE__, __LINE__, "the high thread never started");
		return;
	}
	struct thread *a = thread_run(points_busy, NULL, "pp-busy", PRIO_BUSY, cpu);
	struct thread *t[2] = {a, h};
	join_all(t, 2);
	switch (sched_model()) {
	case PREEMPT_NONE:
		want = 4;
		break;
	case PREEMPT_VOLUNTARY:
		want = 2;
		break;
	default:
		want = 1;
		break;
	}
	if ((int64_t)(pp.a_start - pp.deadline) >= 0) {
		kt_skip("the busy thread started after the deadline (host stall): inconclusive");
		return;
	}
	kprintf("  # preempt=%s: the thread woken at its deadline first ran at %s of the busy "
	        "thread, %lu us after the deadline\n",
	        preempt_name(sched_model()), phase_name[pp.saw_phase],
	        tsc_to_ns(pp.t_high - pp.deadline) / 1000);
	if (pp.saw_phase != want)
		kt_fail(__FILE__, __LINE__, "preempt=%s: switched at %s, expected %s",
		        preempt_name(sched_model()), phase_name[pp.saw_phase], phase_name[want]);
}

/* ---- Round-robin among equal priorities (needs someone to take the CPU back). */

static struct {
	volatile int last;
	volatile int turns[2];
	volatile uint64_t start[2], end[2];
	bool use_cond_resched;
} rr;

static void rr_worker(void *arg)
{
	int me = (int)(uintptr_t)arg;
	uint64_t end = rdtsc() + ms_tsc(100);

	rr.start[me] = rdtsc();
	while ((int64_t)(rdtsc() - end) < 0) {
		if (rr.last != me) {
			rr.last = me;
			rr.turns[me]++;
		}
		if (rr.use_cond_resched)
			cond_resched();
	}
	rr.end[me] = rdtsc();
}

KTEST(sched, round_robin, .timeout_ms = 10000)
{
	int cpu = target_cpu();

	memset(&rr, 0, sizeof(rr));
	rr.last = -1;
	rr.use_cond_resched = sched_model() == PREEMPT_VOLUNTARY;
	struct thread *t[2];
	t[0] = thread_create(rr_worker, (void *)0, "rr-0", PRIO_BUSY, cpu);
	t[1] = thread_create(rr_worker, (void *)1, "rr-1", PRIO_BUSY, cpu);
	KT_EXPECT(t[0] && t[1]);
	thread_start(t[0]);
	thread_start(t[1]);
	join_all(t, 2);
	int turns = rr.turns[0] + rr.turns[1];
	bool overlap =
	    (int64_t)(rr.start[1] - rr.end[0]) < 0 && (int64_t)(rr.start[0] - rr.end[1]) < 0;
	kprintf("  # preempt=%s: two equal-priority 100 ms threads took %d turns%s\n",
	        preempt_name(sched_model()), turns,
	        overlap ? " (interleaved)" : " (one after the other)");
	if (sched_model() == PREEMPT_NONE) {
		KT_EXPECT(!overlap);
		KT_EXPECT_LE(turns, 2);
	} else {
		/* 10 ms slices over 200 ms; a slow host stretches slices, so ask for a few. */
		KT_EXPECT(overlap);
		KT_EXPECT(turns >= 4);
	}
}

/* ---- Sleeping to a deadline: never early; the lateness is reported. */

static struct {
	volatile int64_t min_late, max_late;
	volatile uint64_t sum_late;
	volatile int early, n;
} sl;

static void sleeper(void *arg)
{
	(void)arg;
	uint64_t next = rdtsc();
	for (int i = 0; i < 20; i++) {
		next += ms_tsc(2);
		sleep_until(next);
		int64_t late = (int64_t)(rdtsc() - next);
		if (late < 0)
			sl.early++;
		if (late > sl.max_late)
			sl.max_late = late;
		if (late < sl.min_late)
			sl.min_late = late;
		sl.sum_late += (uint64_t)(late < 0 ? 0 : late);
		sl.n++;
	}
}

KTEST(sched, sleep_until_deadline, .timeout_ms = 10000)
{
	char extra[64];
	int cpu = target_cpu();

	memset(&sl, 0, sizeof(sl));
	sl.min_late = INT64_MAX;
	struct thread *t = thread_run(sleeper, NULL, "sleeper", PRIO_HIGH, cpu);
	join_all(&t, 1);
	KT_EXPECT_EQ(sl.n, 20);
	KT_EXPECT_EQ(sl.early, 0);
	snprintf(extra, sizeof(extra), "cpu=%d samples=%d", cpu, sl.n);
	kt_metric("sched.sleep_late_ns.avg", (long long)tsc_to_ns(sl.sum_late / (sl.n ? sl.n : 1)),
	          "ns", extra);
	kt_metric("sched.sleep_late_ns.max", (long long)tsc_to_ns((uint64_t)sl.max_late), "ns",
	          extra);
}

/* ---- Wait queues: ping-pong between two threads (on two CPUs when there are). */

#define PINGS 300

static struct {
	struct wait_queue wq[2];
	volatile int turn; /* whose turn: 0 or 1 */
	volatile int count[2];
} pg;

static void pong_worker(void *arg)
{
	int me = (int)(uintptr_t)arg;

	for (int i = 0; i < PINGS; i++) {
		wait_event(pg.wq[me], __atomic_load_n(&pg.turn, __ATOMIC_ACQUIRE) == me);
		pg.count[me]++;
		__atomic_store_n(&pg.turn, !me, __ATOMIC_RELEASE);
		wake_up(&pg.wq[!me]);
	}
}

KTEST(sched, wait_queue_pingpong, .timeout_ms = 20000)
{
	uint64_t t0 = rdtsc();

	memset(&pg, 0, sizeof(pg));
	wait_queue_init(&pg.wq[0]);
	wait_queue_init(&pg.wq[1]);
	struct thread *t[2];
	t[0] = thread_run(pong_worker, (void *)0, "ping", PRIO_BUSY, 0);
	t[1] = thread_run(pong_worker, (void *)1, "pong", PRIO_BUSY, target_cpu());
	join_all(t, 2);
	KT_EXPECT_EQ(pg.count[0], PINGS);
	KT_EXPECT_EQ(pg.count[1], PINGS);
	char extra[48];
	snprintf(extra, sizeof(extra), "cpus=%d rounds=%d", target_cpu() == 0 ? 1 : 2, PINGS);
	kt_metric("sched.waitqueue_roundtrip_ns", (long long)(tsc_to_ns(rdtsc() - t0) / PINGS),
	          "ns", extra);
}

/* ---- Affinity and explicit migration. */

static struct {
	volatile int wrong, hops, bad_hops;
	struct event asleep, go;
	volatile int woke_on;
} af;

static void pinned_worker(void *arg)
{
	int want = (int)(uintptr_t)arg;
	for (int i = 0; i < 50; i++) {
		if (smp_processor_id() != want)
			af.wrong++;
		if (i % 2)
			yield();
		else
			sleep_ns(200 * NSEC_PER_USEC);
	}
}

/*
 * Each hop pins the thread to one CPU: an unpinned thread that moves
 * itself lands on that CPU's queue, where an idle CPU may rightly take it
 * before it runs (docs/sched.md), so only a pinned one must be there.
 */
static void hopper(void *arg)
{
	(void)arg;
	int cpu;
	cpumask_t only;
	for (int round = 0; round < 3; round++) {
		for_each_online_cpu(cpu) {
			cpumask_clear(&only);
			cpumask_set_cpu(cpu, &only);
			if (thread_set_affinity(this_thread(), &only) != 0 ||
			    smp_processor_id() != cpu)
				af.bad_hops++;
			af.hops++;
		}
	}
	/* Unpinned again, a move to any CPU is accepted. */
	if (thread_set_affinity(this_thread(), &cpu_online_mask) != 0 ||
	    thread_migrate(this_thread(), num_online_cpus() - 1) != 0)
		af.bad_hops++;
}

static void sleeper_moved(void *arg)
{
	(void)arg;
	event_set(&af.asleep);
	event_wait(&af.go, 5000);
	af.woke_on = smp_processor_id();
}

KTEST(sched, affinity_and_migration, .timeout_ms = 20000)
{
	int cpu;
	struct thread *t[MAX_CPUS < 64 ? MAX_CPUS : 64];
	int n = 0;

	memset(&af, 0, sizeof(af));
	for_each_online_cpu(cpu) {
		if (n == 64)
			break;
		t[n++] =
		    thread_run(pinned_worker, (void *)(uintptr_t)cpu, "pinned", PRIO_BUSY, cpu);
	}
	join_all(t, n);
	KT_EXPECT_EQ(af.wrong, 0);

	/* A thread moves itself through every CPU, three times. */
	struct thread *h = thread_run(hopper, NULL, "hopper", PRIO_BUSY, THREAD_ANY_CPU);
	join_all(&h, 1);
	KT_EXPECT_EQ(af.bad_hops, 0);
	KT_EXPECT_EQ(af.hops, 3 * num_online_cpus());

	/* A sleeping thread is moved, and wakes up on its new CPU. */
	event_init(&af.asleep);
	event_init(&af.go);
	struct thread *s = thread_run(sleeper_moved, NULL, "moved", PRIO_BUSY, THREAD_ANY_CPU);
	KT_EXPECT(event_wait(&af.asleep, 2000));
	/* Really asleep: switched out (a running thread moves only when it next switches). */
	KT_EXPECT(poll_until(s->state == THREAD_BLOCKED && !s->on_cpu, 2000));
	int dest = (s->cpu + 1) % num_online_cpus();
	KT_EXPECT_EQ(thread_migrate(s, dest), 0);
	KT_EXPECT_EQ(s->cpu, dest);
	/* Pinned there too: else an idle CPU may rightly take it once it is runnable. */
	cpumask_t only;
	cpumask_clear(&only);
	cpumask_set_cpu(dest, &only);
	KT_EXPECT_EQ(thread_set_affinity(s, &only), 0);
	event_set(&af.go);
	join_all(&s, 1);
	KT_EXPECT_EQ(af.woke_on, dest);

	/* Not allowed there: refused. */
	if (num_online_cpus() > 1) {
		struct thread *p = thread_create(count_worker, (void *)0, "refused", PRIO_BUSY, 0);
		KT_EXPECT_EQ(thread_migrate(p, 1), -1);
		cpumask_t m;
		cpumask_clear(&m);
		cpumask_set_cpu(1, &m);
		KT_EXPECT_EQ(thread_set_affinity(p, &m), 0);
		KT_EXPECT_EQ(p->cpu, 1);
		thread_start(p);
		join_all(&p, 1);
	}
}

/* ---- Work conservation: N busy threads on N CPUs all run at once. */

/*
 * Long enough to outlast an emulated CPU's wake-up: a halted vCPU's host
 * thread can wait 100 ms and more for a host CPU when vCPUs outnumber them.
 */
#define WC_BUSY_MS 400
#define WC_SAMPLES 16

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

static void check_concurrent(int n, const char *how)
{
	uint64_t last_start = 0, first_end = UINT64_MAX;
	cpumask_t used;

	cpumask_clear(&used);
	for (int i = 0; i < n; i++) {
		if (wc.start[i] > last_start)
			last_start = wc.start[i];
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
	kprintf("  # %s: %d busy threads on %d CPUs; the last started %ld us %s the first "
	        "finished\n",
	        how, n, cpumask_weight(&used),
	        (long)(tsc_to_ns(last_start > first_end ? last_start - first_end
	                                                : first_end - last_start) /
	               1000),
	        last_start > first_end ? "after" : "before");
	if (last_start > first_end)
		kt_fail(__FILE__, __LINE__, "%s: a thread waited for another to finish", how);
	KT_EXPECT_EQ(cpumask_weight(&used), n);
	if (cpumask_weight(&used) == n)
		return;
	for (int i = 0; i < n; i++) {
		char trace[WC_SAMPLES + 1];
		for (int k = 0; k < WC_SAMPLES; k++)
			trace[k] = (char)('0' + wc.trace[i][k] % 10);
		trace[WC_SAMPLES] = '\0';
		kprintf("  # thread %d: started at %ld us, on CPUs %s (every %d ms)\n", i,
		        (long)(tsc_to_ns(wc.start[i] - wc.start[0]) / 1000), trace,
		        WC_BUSY_MS / WC_SAMPLES);
	}
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
	check_concurrent(n, "placed");

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
	check_concurrent(n, "pulled");
}

/* ---- An idle CPU takes no timer interrupt; a sleeping thread's CPU only its deadlines. */

static volatile int nohz_blocked;

static void nohz_sleeper(void *arg)
{
	(void)arg;
	uint64_t next = rdtsc();
	for (int i = 0; i < 5; i++) {
		next += ms_tsc(30);
		if ((int64_t)(rdtsc() - next) < 0)
			nohz_blocked++; /* a late start (host stall) may leave nothing to sleep */
		sleep_until(next);
	}
}

KTEST(sched, tickless_idle, .min_cpus = 2, .timeout_ms = 10000)
{
	uint64_t before[MAX_CPUS < 64 ? MAX_CPUS : 64];
	int cpu, n = num_online_cpus() < 64 ? num_online_cpus() : 64, noisy = 0;

	msleep(20); /* let the APs settle into their idle loops */
	for (cpu = 1; cpu < n; cpu++)
		before[cpu] = lapic_timer_fired(cpu, NULL);
	mdelay(300); /* this CPU busy: its tick runs; the others idle */
	for (cpu = 1; cpu < n; cpu++) {
		uint64_t ticks = lapic_timer_fired(cpu, NULL) - before[cpu];
		if (ticks) {
			kprintf("  # CPU %d took %lu timer interrupts while idle\n", cpu, ticks);
			noisy++;
		}
	}
	KT_EXPECT_EQ(noisy, 0);

	/*
	 * A thread sleeping five times 30 ms on CPU t: one expiry each (an
	 * early one re-arms: a few more), where a periodic tick would take 15.
	 */
	int t = target_cpu();
	nohz_blocked = 0;
	uint64_t f0 = lapic_timer_fired(t, NULL);
	struct thread *s = thread_run(nohz_sleeper, NULL, "nohz", PRIO_HIGH, t);
	join_all(&s, 1);
	msleep(5);
	uint64_t fired = lapic_timer_fired(t, NULL) - f0;
	char extra[48];
	snprintf(extra, sizeof(extra), "cpu=%d sleeps=%d", t, nohz_blocked);
	kt_metric("sched.tickless.sleeper_interrupts", (long long)fired, "interrupts", extra);
	KT_EXPECT(fired >= (uint64_t)nohz_blocked);
	KT_EXPECT_LE(fired, 2 * nohz_blocked);
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

/* ---- Priority inversion, with and without inheritance. */

#define PI_CS_MS 30
#define PI_HOG_MS 300

static struct {
	struct rt_mutex m;
	struct event l_locked;
	volatile uint64_t h_block, h_acquired, m_first, m_end, l_cs_end;
	volatile int h_blocked, go;
} pi;

/* Holds the lock until the stage is set, then works PI_CS_MS more: its critical section. */
static void pi_low(void *arg)
{
	(void)arg;
	rt_mutex_lock(&pi.m);
	event_set(&pi.l_locked);
	while (!__atomic_load_n(&pi.go, __ATOMIC_ACQUIRE))
		cpu_relax();
	busy_until(rdtsc() + ms_tsc(PI_CS_MS));
	pi.l_cs_end = rdtsc();
	rt_mutex_unlock(&pi.m);
}

static void pi_high(void *arg)
{
	(void)arg;
	pi.h_block = rdtsc();
	__atomic_store_n(&pi.h_blocked, 1, __ATOMIC_RELEASE);
	rt_mutex_lock(&pi.m);
	pi.h_acquired = rdtsc();
	rt_mutex_unlock(&pi.m);
}

static void pi_medium(void *arg)
{
	(void)arg;
	pi.m_first = rdtsc();
	uint64_t end = pi.m_first + ms_tsc(PI_HOG_MS);
	/* A hog, bounded by the test: it stops early only once the high thread got the lock. */
	while ((int64_t)(rdtsc() - end) < 0 && !pi.h_acquired)
		cpu_relax();
	pi.m_end = rdtsc();
}

static void inversion(bool inherit)
{
	int cpu = target_cpu();
	char extra[80];

	memset((void *)&pi.h_block, 0, sizeof(pi) - offsetof(typeof(pi), h_block));
	rt_mutex_init(&pi.m, inherit ? "pi.lock" : "pi.lock-no-pi", inherit ? 0 : RT_MUTEX_NO_PI);
	event_init(&pi.l_locked);
	struct thread *t[3] = {0};
	t[0] = thread_run(pi_low, NULL, "pi-low", PRIO_LOW, cpu);
	if (!event_wait(&pi.l_locked, 2000)) {
		kt_fail(__FILE__, __LINE__, "the low thread never took the lock");
		join_all(t, 1);
		return;
	}
	t[1] = thread_run(pi_high, NULL, "pi-high", PRIO_HIGH, cpu);
	/* The high thread must be asleep on the lock before the hog arrives. */
	if (!poll_until(rt_mutex_has_waiters(&pi.m) && t[1]->state == THREAD_BLOCKED, 2000))
		kt_fail(__FILE__, __LINE__, "the high thread never blocked on the lock");
	if (inherit)
		KT_EXPECT_EQ(thread_prio(t[0]), PRIO_HIGH);
	else
		KT_EXPECT_EQ(thread_prio(t[0]), PRIO_LOW);
	t[2] = thread_run(pi_medium, NULL, "pi-medium", PRIO_MID, cpu);
	/* The hog is on that CPU (queued behind the boosted holder, or running). */
	if (!poll_until(t[2]->queued || t[2]->on_cpu || pi.m_first, 2000))
		kt_fail(__FILE__, __LINE__, "the hog never reached CPU %d", cpu);
	__atomic_store_n(&pi.go, 1, __ATOMIC_RELEASE);
	join_all(t, 3);
	KT_EXPECT_EQ(thread_prio(t[0]), PRIO_LOW);

	uint64_t wait = pi.h_acquired - pi.h_block;
	bool hog_first = (int64_t)(pi.m_first - pi.h_acquired) < 0;
	snprintf(extra, sizeof(extra), "pi=%d cs_ms=%d hog_ms=%d model=%s", inherit, PI_CS_MS,
	         PI_HOG_MS, preempt_name(sched_model()));
	kt_metric("sched.pi.high_wait_ns", (long long)tsc_to_ns(wait), "ns", extra);
	kprintf("  # %s: the high thread waited %lu us; the medium hog ran %s it got the lock\n",
	        inherit ? "inheritance" : "no inheritance", tsc_to_ns(wait) / 1000,
	        hog_first ? "before" : "after");
	if (inherit) {
		/* Bounded by the holder's critical section: the hog never got in before. */
		if (hog_first)
			kt_fail(__FILE__, __LINE__,
			        "with inheritance the hog ran before the high thread");
		if ((int64_t)(pi.h_acquired - pi.l_cs_end) < 0)
			kt_fail(__FILE__, __LINE__,
			        "the high thread got the lock before it was free");
	} else {
		/* Unbounded but for the test's bound: the hog ran its whole time first. */
		if (!hog_first)
			kt_fail(__FILE__, __LINE__,
			        "without inheritance the hog did not get in first");
		if ((int64_t)(pi.h_acquired - pi.m_end) < 0)
			kt_fail(__FILE__, __LINE__,
			        "the high thread got the lock while the hog ran");
	}
}

KTEST(sched, priority_inversion, .min_cpus = 2, .timeout_ms = 20000)
{
	if (!model_preempts()) {
		kt_skip("needs preempt=full or rt: here the hog cannot preempt the lock holder");
		return;
	}
	inversion(true);
	inversion(false);
}

/* ---- Transitive inheritance through a chain of owners (every model). */

static struct {
	struct rt_mutex a, b;
	struct event l_has, m_has, l_go;
} ch;

static void chain_low(void *arg)
{
	(void)arg;
	rt_mutex_lock(&ch.a);
	event_set(&ch.l_has);
	event_wait(&ch.l_go, 5000); /* sleeping while holding an rt-mutex is allowed */
	rt_mutex_unlock(&ch.a);
}

static void chain_mid(void *arg)
{
	(void)arg;
	rt_mutex_lock(&ch.b);
	event_set(&ch.m_has);
	rt_mutex_lock(&ch.a);
	rt_mutex_unlock(&ch.a);
	rt_mutex_unlock(&ch.b);
}

static void chain_high(void *arg)
{
	(void)arg;
	rt_mutex_lock(&ch.b);
	rt_mutex_unlock(&ch.b);
}

KTEST(sched, pi_transitive, .timeout_ms = 10000)
{
	struct thread *t[3];

	rt_mutex_init(&ch.a, "chain.a", 0);
	rt_mutex_init(&ch.b, "chain.b", 0);
	event_init(&ch.l_has);
	event_init(&ch.m_has);
	event_init(&ch.l_go);
	t[0] = thread_run(chain_low, NULL, "chain-low", PRIO_LOW, THREAD_ANY_CPU);
	KT_EXPECT(event_wait(&ch.l_has, 2000));
	t[1] = thread_run(chain_mid, NULL, "chain-mid", PRIO_BUSY, THREAD_ANY_CPU);
	KT_EXPECT(event_wait(&ch.m_has, 2000));
	/* Asleep on a: low inherits mid's priority. */
	KT_EXPECT(poll_until(t[1]->state == THREAD_BLOCKED && rt_mutex_has_waiters(&ch.a), 2000));
	KT_EXPECT_EQ(thread_prio(t[0]), PRIO_BUSY);
	t[2] = thread_run(chain_high, NULL, "chain-high", PRIO_HIGH, THREAD_ANY_CPU);
	KT_EXPECT(poll_until(t[2]->state == THREAD_BLOCKED && rt_mutex_has_waiters(&ch.b), 2000));
	/* high waits for b (mid), mid for a (low): both carry high's priority. */
	KT_EXPECT_EQ(thread_prio(t[1]), PRIO_HIGH);
	KT_EXPECT_EQ(thread_prio(t[0]), PRIO_HIGH);
	kprintf("  # chain: low %d, mid %d (bases %d, %d) while high (%d) waits\n",
	        thread_prio(t[0]), thread_prio(t[1]), PRIO_LOW, PRIO_BUSY, PRIO_HIGH);
	event_set(&ch.l_go);
	join_all(t, 3);
	KT_EXPECT_EQ(thread_prio(t[0]), PRIO_LOW);
	KT_EXPECT_EQ(thread_prio(t[1]), PRIO_BUSY);
	KT_EXPECT(rt_mutex_owner(&ch.a) == NULL && rt_mutex_owner(&ch.b) == NULL);
}

/* ---- Deadlock (a cycle of owners) is detected and reported, not slept in. */

static struct {
	struct rt_mutex a, b;
	struct event one_has, two_has;
	volatile int rc_one, rc_two;
} dl;

static void dl_one(void *arg)
{
	(void)arg;
	rt_mutex_lock(&dl.a);
	event_set(&dl.one_has);
	event_wait(&dl.two_has, 5000);
	dl.rc_one = rt_mutex_lock_checked(&dl.b); /* blocks: two holds b */
	if (dl.rc_one == 0)
		rt_mutex_unlock(&dl.b);
	rt_mutex_unlock(&dl.a);
}

static void dl_two(void *arg)
{
	(void)arg;
	rt_mutex_lock(&dl.b);
	event_set(&dl.two_has);
	event_wait(&dl.one_has, 5000);
	poll_until(rt_mutex_has_waiters(&dl.b), 2000); /* one now waits for b */
	dl.rc_two = rt_mutex_lock_checked(&dl.a);      /* would close the cycle */
	if (dl.rc_two == 0)
		rt_mutex_unlock(&dl.a);
	rt_mutex_unlock(&dl.b);
}

KTEST(sched, deadlock_detected, .timeout_ms = 10000)
{
	struct thread *t[2];

	rt_mutex_init(&dl.a, "dl.a", 0);
	rt_mutex_init(&dl.b, "dl.b", 0);
	event_init(&dl.one_has);
	event_init(&dl.two_has);
	dl.rc_one = dl.rc_two = 1;
	t[0] = thread_run(dl_one, NULL, "dl-one", PRIO_BUSY, THREAD_ANY_CPU);
	t[1] = thread_run(dl_two, NULL, "dl-two", PRIO_BUSY, THREAD_ANY_CPU);
	join_all(t, 2);
	KT_EXPECT_EQ(dl.rc_two, -EDEADLK);
	KT_EXPECT_EQ(dl.rc_one, 0);
}

/* ---- preempt=rt: a contended spinlock_t sleeps, and lends its holder priority. */

static struct {
	spinlock_t lock;
	struct event held, go;
	volatile int waiter_state;
} rs;

static void rs_holder(void *arg)
{
	(void)arg;
	spin_lock(&rs.lock);
	event_set(&rs.held);
	event_wait(&rs.go, 5000); /* only an rt spinlock_t may be held across a sleep */
	spin_unlock(&rs.lock);
}

static void rs_waiter(void *arg)
{
	(void)arg;
	spin_lock(&rs.lock);
	spin_unlock(&rs.lock);
}

KTEST(sched, rt_spinlock_sleeps, .timeout_ms = 10000)
{
	if (sched_model() != PREEMPT_RT) {
		kt_skip("needs preempt=rt: spinlock_t spins under the other models");
		return;
	}
	struct thread *t[2];
	int cpu = target_cpu();

	spin_lock_init(&rs.lock);
	event_init(&rs.held);
	event_init(&rs.go);
	t[0] = thread_run(rs_holder, NULL, "rs-holder", PRIO_LOW, cpu);
	KT_EXPECT(event_wait(&rs.held, 2000));
	t[1] = thread_run(rs_waiter, NULL, "rs-waiter", PRIO_HIGH, cpu);
	KT_EXPECT(poll_until(spin_is_contended(&rs.lock), 2000));
	KT_EXPECT_EQ(t[1]->state, THREAD_BLOCKED); /* asleep, not spinning */
	KT_EXPECT_EQ(thread_prio(t[0]), PRIO_HIGH);
	event_set(&rs.go);
	join_all(t, 2);
	KT_EXPECT_EQ(thread_prio(t[0]), PRIO_LOW);
	KT_EXPECT(!spin_is_locked(&rs.lock));
}

/* ---- preempt=rt: where nothing may sleep, a spinlock_t still works (it spins). */

static struct {
	spinlock_t lock;
	struct event held;
	volatile uint64_t released, acquired;
	volatile int in_irq_ok;
} ra;

static void ra_holder(void *arg)
{
	(void)arg;
	spin_lock(&ra.lock);
	event_set(&ra.held);
	busy_until(rdtsc() + ms_tsc(20));
	ra.released = rdtsc();
	spin_unlock(&ra.lock);
}

static void ra_in_irq(void *arg)
{
	(void)arg;
	spin_lock(&ra.lock); /* interrupt context: uncontended, taken at once */
	ra.in_irq_ok = this_cpu()->irq_depth > 0 || irqs_disabled();
	spin_unlock(&ra.lock);
}

KTEST(sched, rt_spinlock_atomic, .min_cpus = 2, .timeout_ms = 10000)
{
	if (sched_model() != PREEMPT_RT) {
		kt_skip("needs preempt=rt: elsewhere spinlock_t never sleeps");
		return;
	}
	unsigned long flags;

	memset((void *)&ra.released, 0, sizeof(ra) - offsetof(typeof(ra), released));
	spin_lock_init(&ra.lock);
	event_init(&ra.held);
	struct thread *t = thread_run(ra_holder, NULL, "ra-holder", PRIO_BUSY, target_cpu());
	KT_EXPECT(event_wait(&ra.held, 2000));
	/* Interrupts off: this caller cannot sleep, so it spins until the holder lets go. */
	flags = local_irq_save();
	KT_EXPECT(!sched_can_sleep());
	spin_lock(&ra.lock);
	ra.acquired = rdtsc();
	spin_unlock(&ra.lock);
	local_irq_restore(flags);
	join_all(&t, 1);
	KT_EXPECT(ra.released != 0);
	KT_EXPECT((int64_t)(ra.acquired - ra.released) >= 0);
	/* And from an interrupt handler on another CPU. */
	KT_EXPECT_EQ(on_cpu(target_cpu(), ra_in_irq, NULL, true), 0);
	KT_EXPECT(ra.in_irq_ok);
	KT_EXPECT(!spin_is_locked(&ra.lock));
}
