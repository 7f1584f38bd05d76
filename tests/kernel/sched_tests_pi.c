/*
 * The `sched` suite, continued: the rt-mutex and preempt=rt's spinlock_t.
 * These tests are about who waits for whom, and at what priority, rather
 * than about where a switch happens.  The harness runs a suite's files in
 * name order, so these tests come last.
 */
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "ktest.h"
#include "sched.h"
#include "sched_tests.h"
#include "smp.h"
#include "time.h"
#include "x86.h"

#define cpu_relax lock_arch_cpu_relax
#include "lock/spinlock.h"
#undef cpu_relax

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
