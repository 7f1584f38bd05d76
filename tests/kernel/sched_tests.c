/*
 * The `sched` suite: threads, priorities, the preemption models, sleeping,
 * wait queues, affinity and migration.  Work conservation and the tickless
 * idle CPU are in sched_tests_idle.c; the rt-mutex (priority inheritance,
 * transitive, deadlock detection) and preempt=rt's spinlock_t in
 * sched_tests_pi.c; what they share in sched_tests.h.  The wake-up latency
 * benchmark is in sched_bench.c.
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
#include "sched_tests.h"
#include "cpu.h"
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

void join_all(struct thread **t, int n)
{
	for (int i = 0; i < n; i++) {
		if (t[i] && !thread_join(t[i], JOIN_MS)) {
			kt_fail(__FILE__, __LINE__, "thread %s did not exit within %d ms",
			        t[i]->name, JOIN_MS);
			sched_dump_threads();
		}
	}
}

/*
 * For threads doing a fixed amount of work whose length is the host's to
 * decide (an emulated CPU under load may run a round trip at a tenth of its
 * usual speed): what a lost wake-up or a hang looks like is work that stops,
 * so the bound is on a stretch without progress, not on the whole.
 */
void join_all_progressing(struct thread **t, int n, long (*progress)(void))
{
	for (int i = 0; i < n; i++) {
		if (!t[i])
			continue;
		long seen = progress();
		uint64_t last = rdtsc();
		while (!thread_join(t[i], JOIN_MS / 10)) {
			long now = progress();
			if (now != seen) {
				seen = now;
				last = rdtsc();
			} else if (rdtsc() - last > ms_tsc(JOIN_MS)) {
				kt_fail(__FILE__, __LINE__,
				        "thread %s made no progress for %d ms (at %ld), not exited",
				        t[i]->name, JOIN_MS, now);
				sched_dump_threads();
				break;
			}
		}
	}
}

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

/*
 * Under a model that takes the CPU back, a thread works on past its 100 ms
 * until the two have taken RR_TURNS turns between them, for up to
 * RR_MAX_MS: a host that stops the vCPU stretches a slice (the timer fires
 * late), and 100 ms of wall time may then hold only two or three of them.
 * Round-robin itself gives the turns whatever the host does; a model that
 * never switches gives 2 in any time.
 */
#define RR_TURNS 4
#define RR_MAX_MS 1000

static bool rr_more(uint64_t end, uint64_t hard_end)
{
	uint64_t now = rdtsc();
	if ((int64_t)(now - end) < 0)
		return true;
	if (sched_model() == PREEMPT_NONE || rr.turns[0] + rr.turns[1] >= RR_TURNS)
		return false;
	return (int64_t)(now - hard_end) < 0;
}

static void rr_worker(void *arg)
{
	int me = (int)(uintptr_t)arg;
	uint64_t end = rdtsc() + ms_tsc(100), hard_end = rdtsc() + ms_tsc(RR_MAX_MS);

	rr.start[me] = rdtsc();
	while (rr_more(end, hard_end)) {
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
	struct sched_stats before, after;
	t[0] = thread_create(rr_worker, (void *)0, "rr-0", PRIO_BUSY, cpu);
	t[1] = thread_create(rr_worker, (void *)1, "rr-1", PRIO_BUSY, cpu);
	KT_EXPECT(t[0] && t[1]);
	sched_get_stats(cpu, &before);
	uint64_t t_begin = rdtsc();
	thread_start(t[0]);
	thread_start(t[1]);
	join_all(t, 2);
	uint64_t span_ms = tsc_to_ns(rdtsc() - t_begin) / NSEC_PER_MSEC;
	sched_get_stats(cpu, &after);
	int turns = rr.turns[0] + rr.turns[1];
	bool overlap =
	    (int64_t)(rr.start[1] - rr.end[0]) < 0 && (int64_t)(rr.start[0] - rr.end[1]) < 0;
	kprintf("  # preempt=%s: two equal-priority 100 ms threads took %d turns%s\n",
	        preempt_name(sched_model()), turns,
	        overlap ? " (interleaved)" : " (one after the other)");
	/*
	 * The busy CPU's timer events: the tick and the ends of slices, a few
	 * per TICK_HZ period.  Re-arming for a slice end that has passed but
	 * that the model lets run on (none, voluntary) fires at once, again
	 * and again: thousands in real time, and in virtual time a CPU that
	 * never runs the thread again.  A slow host gives fewer ticks, not more.
	 */
	uint64_t ticks = after.ticks - before.ticks, bound = 4 * (span_ms * TICK_HZ / 1000 + 4);
	kprintf("  # CPU %d took %lu timer interrupts in %lu ms (bound %lu)\n", cpu, ticks, span_ms,
	        bound);
	KT_EXPECT_LE(ticks, bound);
	if (sched_model() == PREEMPT_NONE) {
		KT_EXPECT(!overlap);
		KT_EXPECT_LE(turns, 2);
	} else {
		/* 10 ms slices over 200 ms; a slow host stretches slices (see rr_more). */
		KT_EXPECT(overlap);
		KT_EXPECT(turns >= RR_TURNS);
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

static long pingpong_progress(void)
{
	return pg.count[0] + pg.count[1];
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
	join_all_progressing(t, 2, pingpong_progress);
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
