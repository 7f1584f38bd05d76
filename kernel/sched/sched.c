/*
 * The scheduler: threads, per-CPU run queues, the context switch and its
 * bookkeeping, timed sleep, the tick, the idle loop and the balancer.
 *
 * Run queues.  Each CPU has one, with a FIFO list per priority and a bitmap
 * of the non-empty ones, so picking the next thread is a find-last-set.
 * The running thread is not on the lists; switching out puts it back (at
 * the head when a higher priority took the CPU, so it keeps its turn; at
 * the tail when its slice ran out or it yielded).  Threads stay on their
 * CPU: a wake-up queues a thread where it last ran.  Work moves only by
 * explicit migration, at creation (the least loaded allowed CPU) and by
 * the idle balancer: a CPU with nothing to run takes a queued thread from
 * another CPU, and a CPU that queues a thread which has to wait kicks an
 * idle CPU the thread may run on to come and take it.
 *
 * The timer.  There is no periodic tick.  Each CPU's LAPIC timer is armed
 * (one-shot, or TSC-deadline where the CPU has it) for its next event: the
 * earliest deadline of a thread sleeping on it; while a thread runs, also
 * the busy tick (TICK_HZ, the watchdog's heartbeat and the slice check) and
 * the end of the running thread's slice when an equal-priority thread
 * waits.  An idle CPU with no sleepers arms nothing and halts; the boot
 * CPU, idle, keeps one event every IDLE_CHECK_MS so the watchdog still
 * looks at the others (kernel/apic/watchdog.c ignores idle CPUs).
 *
 * Preemption.  preempt_count lives in struct cpu and moves with one
 * %gs-relative instruction; a thread never switches out with a non-zero
 * count of its own, so the per-CPU count is the running thread's.  Where
 * the scheduler may take the CPU back depends on the model (sched.h): the
 * return from an interrupt (sched_irq_exit, called by trap()) and
 * preempt_enable() under full and rt; cond_resched() and the breakable
 * lock's cond_resched_lock() under voluntary, full and rt; under none only
 * blocking, yielding and exiting switch.
 */
#include "apic.h"
#include "internal.h"
#include "irq.h"
#include "kernel.h"
#include "mm.h"
#include "tlb.h"

#define MAX_THREADS 256
#define IDLE_CHECK_MS 500
#define EXPIRE_BATCH 16
#define ADOPT_TIMEOUT_MS 1000
#define PULL_RETRY_US 2000

struct rq runqueues[MAX_CPUS];
volatile bool sched_running;
static enum preempt_model model = PREEMPT_FULL;
static cpumask_t idle_mask; /* CPUs in their idle loop, about to halt or halted */
static uint64_t tick_cycles, slice_cycles, idle_check_cycles, pull_retry_cycles;

static struct thread boot_thread;
static struct thread idle_threads[MAX_CPUS];
static struct thread thread_pool[MAX_THREADS];
static bool pool_busy[MAX_THREADS];
static volatile int pool_lock;
static int next_thread_id = 1;
static DEFINE_WAIT_QUEUE(exit_wq);

enum preempt_model sched_model(void)
{
	return model;
}

static bool model_preempts(void)
{
	return model == PREEMPT_FULL || model == PREEMPT_RT;
}

/* ---- Run queue lists. */

static void enqueue(struct rq *rq, struct thread *t, bool head)
{
	struct sched_link *q = &rq->queue[t->prio];

	if (head)
		link_add_head(&t->rq_link, q);
	else
		link_add_tail(&t->rq_link, q);
	rq->bitmap |= 1u << t->prio;
	rq->nr_queued++;
	t->queued = true;
}

static void dequeue(struct rq *rq, struct thread *t)
{
	link_del(&t->rq_link);
	if (link_empty(&rq->queue[t->prio]))
		rq->bitmap &= ~(1u << t->prio);
	rq->nr_queued--;
	t->queued = false;
}

static int top_queued_prio(const struct rq *rq)
{
	return rq->bitmap ? 31 - __builtin_clz(rq->bitmap) : SCHED_PRIO_IDLE - 1;
}

static struct thread *pick_next(struct rq *rq)
{
	if (!rq->bitmap)
		return rq->idle;
	struct thread *t = link_entry(rq->queue[top_queued_prio(rq)].next, struct thread, rq_link);
	dequeue(rq, t);
	return t;
}

struct rq *thread_rq_lock(struct thread *t)
{
	for (;;) {
		int cpu = __atomic_load_n(&t->cpu, __ATOMIC_ACQUIRE);
		struct rq *rq = &runqueues[cpu];
		rq_lock(rq);
		if (__atomic_load_n(&t->cpu, __ATOMIC_ACQUIRE) == cpu)
			return rq;
		rq_unlock(rq);
	}
}

/* ---- Asking a CPU to reschedule. */

static void resched_cpu(int cpu)
{
	struct cpu *c = &cpus[cpu];

	if (cpu == smp_processor_id()) {
		c->resched = true;
		return;
	}
	/* One IPI per request: a set flag means one is on its way or was acted on. */
	if (!__atomic_exchange_n(&c->resched, true, __ATOMIC_SEQ_CST))
		send_ipi(cpu, VEC_RESCHED);
}

/*
 * Threads allowed on `aff` wait on CPU `busy`: wake up to `n` idle CPUs
 * that may take one each (all at once: under emulation every wake-up of a
 * halted CPU costs the host a thread switch).
 */
static void kick_idle_n(int busy, const cpumask_t *aff, int n)
{
	int cpu;

	if (n <= 0 || cpumask_weight(aff) <= 1)
		return;
	/* Pairs with the idle loop's fence between publishing itself and its last look. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for_each_cpu(cpu, &idle_mask) {
		if (cpu != busy && cpumask_test_cpu(cpu, aff)) {
			resched_cpu(cpu);
			if (--n == 0)
				return;
		}
	}
}

static void kick_idle(int busy, const cpumask_t *aff)
{
	kick_idle_n(busy, aff, 1);
}

static struct thread *first_queued(struct rq *rq)
{
	return link_entry(rq->queue[31 - __builtin_clz(rq->bitmap)].next, struct thread, rq_link);
}

static void kick_idle_for(struct rq *rq, struct thread *t)
{
	kick_idle(rq->cpu, &t->affinity);
}

static bool model_preempts(void);

/*
 * t was just queued on rq (locked): should it take the CPU?  If it waits --
 * behind an equal or higher priority, or, under none and voluntary, until
 * the running thread lets go -- an idle CPU may run it instead.
 */
static void check_preempt(struct rq *rq, struct thread *t)
{
	bool higher = t->prio > rq->curr->prio;

	if (higher)
		resched_cpu(rq->cpu);
	if (!higher || (!model_preempts() && rq->curr != rq->idle))
		kick_idle_for(rq, t);
}

/* ---- The timer. */

static struct thread *first_timer(struct rq *rq)
{
	return link_entry(rq->timers.next, struct thread, timer_link);
}

static void timer_hw_arm(uint64_t target)
{
	if (lapic_timer_deadline(target))
		return;
	/* Relative to now, not to the caller's earlier reading: it may have waited for a lock. */
	uint64_t now = rdtsc();
	uint64_t ns = (int64_t)(target - now) > 0 ? tsc_to_ns(target - now) : 0;
	lapic_timer_oneshot(ns ? ns : 1);
}

/* UINT64_MAX is "nothing yet"; TSC values compare modulo 2^64. */
static void earliest(uint64_t *target, uint64_t t)
{
	if (*target == UINT64_MAX || (int64_t)(t - *target) < 0)
		*target = t;
}

/*
 * Arm this CPU's timer for its next event (rq locked, interrupts off).
 * Without `force` an earlier event already armed is kept: its interrupt
 * re-arms with force.  timer_armed mirrors the hardware (sched_tick clears
 * it when a one-shot fires), so an unchanged event costs no APIC access.
 */
static void rq_program_timer(struct rq *rq, uint64_t now, bool force)
{
	uint64_t target = UINT64_MAX;
	struct thread *curr = rq->curr;

	if (!link_empty(&rq->timers))
		earliest(&target, first_timer(rq)->wake_tsc);
	if (curr != rq->idle) {
		earliest(&target, rq->last_tick + tick_cycles);
		if (rq->bitmap & (1u << curr->prio))
			earliest(&target, curr->slice_end);
	} else if (rq->cpu == 0) {
		earliest(&target, now + idle_check_cycles);
	}
	if (target == UINT64_MAX) {
		if (rq->timer_armed) /* a fired one-shot is not (sched_tick) */
			lapic_timer_stop();
		rq->timer_armed = false;
		return;
	}
	if (rq->timer_armed && rq->next_event == target)
		return;
	if (!force && rq->timer_armed && (int64_t)(rq->next_event - target) <= 0)
		return;
	rq->next_event = target;
	rq->timer_armed = true;
	timer_hw_arm(target);
}

void sched_timer_arm(struct thread *t, uint64_t deadline)
{
	struct rq *rq = this_rq();
	struct sched_link *pos;

	sched_timer_cancel(t);
	rq_lock(rq);
	t->wake_tsc = deadline;
	t->timer_cpu = rq->cpu;
	for (pos = rq->timers.next; pos != &rq->timers; pos = pos->next)
		if ((int64_t)(link_entry(pos, struct thread, timer_link)->wake_tsc - deadline) > 0)
			break;
	link_add_before(&t->timer_link, pos);
	rq_program_timer(rq, rdtsc(), false);
	rq_unlock(rq);
}

void sched_timer_cancel(struct thread *t)
{
	unsigned long flags = local_irq_save();
	int cpu = __atomic_load_n(&t->timer_cpu, __ATOMIC_ACQUIRE);

	if (cpu >= 0) {
		struct rq *rq = &runqueues[cpu];
		rq_lock(rq);
		if (t->timer_cpu == cpu) {
			link_del(&t->timer_link);
			t->timer_cpu = -1;
		}
		rq_unlock(rq);
	}
	local_irq_restore(flags);
	/* A tick that already took it off its list may still be waking it. */
	while (__atomic_load_n(&t->timer_firing, __ATOMIC_ACQUIRE))
		cpu_relax();
}

/* The LAPIC timer's hook: sleepers whose deadline passed, the slice, the next event. */
static void sched_tick(struct trapframe *tf)
{
	struct thread *expired[EXPIRE_BATCH];
	int n = 0;

	(void)tf;
	if (!sched_running)
		return;
	struct rq *rq = this_rq();
	uint64_t now = rdtsc();

	rq_lock(rq);
	rq->stats.ticks++;
	rq->last_tick = now;
	/* A one-shot (or deadline) timer that fired is disarmed; a periodic one is not. */
	bool periodic = lapic_timer_is_periodic();
	rq->timer_armed = periodic;
	while (!link_empty(&rq->timers) && n < EXPIRE_BATCH) {
		struct thread *t = first_timer(rq);
		if ((int64_t)(now - t->wake_tsc) < 0)
			break;
		link_del(&t->timer_link);
		t->timer_cpu = -1;
		t->timer_firing = true;
		t->timer_woken_tsc = now;
		expired[n++] = t;
	}
	struct thread *curr = rq->curr;
	if (curr != rq->idle && (rq->bitmap & (1u << curr->prio)) &&
	    (int64_t)(now - curr->slice_end) >= 0) {
		curr->slice_expired = true;
		this_cpu()->resched = true;
	}
	/* Balance: a kick an idle CPU missed is repeated here, once per busy tick. */
	if (rq->nr_queued && curr != rq->idle)
		kick_idle(rq->cpu, &first_queued(rq)->affinity);
	if (periodic)
		rq->next_event = 0; /* someone restored the periodic tick: replace it */
	rq_program_timer(rq, now, true);
	rq_unlock(rq);
	for (int i = 0; i < n; i++) {
		wake_up_thread(expired[i]);
		__atomic_store_n(&expired[i]->timer_firing, false, __ATOMIC_RELEASE);
	}
}

static void resched_ipi(struct trapframe *tf)
{
	(void)tf;
	lapic_eoi();
	/* The flag is already set; the return from this interrupt (or the idle loop) acts. */
}

/* ---- Switching. */

static void check_stack(struct thread *t)
{
	if (t->stack && *(volatile uint64_t *)t->stack != STACK_MAGIC)
		panic("thread %d (%s) overflowed its %zu-byte stack", t->id, t->name,
		      t->stack_size);
}

static void reap(struct thread *t);

/* In the new context, with the run queue lock its predecessor took. */
static void finish_switch(struct thread *prev)
{
	struct rq *rq = this_rq();
	int dest = -1;
	bool requeue = false, dead = prev->state == THREAD_DEAD;

	if (prev->migrate_to >= 0 && !dead) {
		dest = prev->migrate_to;
		prev->migrate_to = -1;
		requeue = prev->state == THREAD_RUNNING;
	}
	__atomic_store_n(&prev->on_cpu, 0, __ATOMIC_RELEASE);
	if (dest >= 0)
		__atomic_store_n(&prev->cpu, dest, __ATOMIC_RELEASE);
	rq_unlock(rq);
	if (requeue) {
		/* In transit until queued there: wake-ups ignore it, it is RUNNING. */
		struct rq *drq = &runqueues[dest];
		rq_lock(drq);
		prev->migrations++;
		enqueue(drq, prev, false);
		check_preempt(drq, prev);
		rq_unlock(drq);
	} else if (dest >= 0) {
		prev->migrations++;
	}
	if (dead)
		reap(prev);
}

/*
 * Pick and switch (interrupts off, preempt_count >= 1).  `preempt`: the
 * running thread did not ask to stop, so it stays runnable whatever its
 * state says (it may be between prepare_to_wait() and schedule()).
 */
static void __schedule(bool preempt)
{
	struct rq *rq = this_rq();
	struct thread *prev = rq->curr, *next;
	uint64_t now = rdtsc();

	check_stack(prev);
	rq_lock(rq);
	this_cpu()->resched = false;
	prev->runtime_tsc += now - prev->switched_in_tsc;
	if (prev != rq->idle && prev->migrate_to < 0 &&
	    (prev->state == THREAD_RUNNING || (preempt && prev->state == THREAD_BLOCKED)))
		enqueue(rq, prev, preempt && !prev->slice_expired);
	prev->slice_expired = false;
	next = pick_next(rq);
	if (rq->nr_queued) /* more than this CPU can run now: idle ones may take them */
		kick_idle_n(rq->cpu, &first_queued(rq)->affinity, rq->nr_queued);
	if (next == prev) {
		prev->switched_in_tsc = now;
		prev->slice_end = now + slice_cycles;
		rq_program_timer(rq, now, false);
		rq_unlock(rq);
		return;
	}
	next->slice_end = now + slice_cycles;
	next->switched_in_tsc = now;
	next->on_cpu = 1;
	rq->curr = next;
	this_cpu()->sched_current = next;
	rq->stats.switches++;
	if (preempt && prev->state != THREAD_DEAD) {
		prev->nivcsw++;
		rq->stats.preemptions++;
	} else {
		prev->nvcsw++;
	}
	if (prev == rq->idle) {
		rq->last_tick = now; /* the busy tick starts now */
		/* Left from an interrupt (full, rt) or its loop: either way no longer idle. */
		cpumask_clear_cpu(rq->cpu, &idle_mask);
	}
	if (next == rq->idle || prev == rq->idle)
		rq_program_timer(rq, now, next == rq->idle);
	else
		rq_program_timer(rq, now, false);
	tlb_switch_hook(); /* lazy shootdowns: flushed before another thread runs */
	finish_switch(sched_switch(prev, next));
}

void sched_switch_out(void)
{
	preempt_count_inc();
	__schedule(false);
	preempt_count_dec();
}

static __noreturn void atomic_sleep_bug(const char *what)
{
	struct thread *t = this_thread();
	panic("%s in atomic context: thread %d (%s) on CPU %d, preempt_count %d, irq_depth %d",
	      what, t ? t->id : -1, t ? t->name : "?", smp_processor_id(), preempt_count(),
	      this_cpu()->irq_depth);
}

void schedule(void)
{
	if (!sched_running)
		return;
	unsigned long flags = local_irq_save();
	if (preempt_count() || this_cpu()->irq_depth)
		atomic_sleep_bug("schedule()");
	sched_switch_out();
	local_irq_restore(flags);
}

static void preempt_schedule_irqoff(void)
{
	do {
		preempt_count_inc();
		__schedule(true);
		preempt_count_dec();
	} while (this_cpu()->resched);
}

void preempt_check(void)
{
	if (!model_preempts() || !this_cpu()->resched || !sched_running)
		return;
	if (preempt_count() || irqs_disabled() || this_cpu()->irq_depth)
		return;
	unsigned long flags = local_irq_save();
	preempt_schedule_irqoff();
	local_irq_restore(flags);
}

void preempt_enable(void)
{
	preempt_count_dec();
	if (this_cpu()->resched)
		preempt_check();
}

bool cond_resched(void)
{
	if (model == PREEMPT_NONE || !this_cpu()->resched || !sched_running)
		return false;
	if (preempt_count() || irqs_disabled() || this_cpu()->irq_depth)
		return false;
	unsigned long flags = local_irq_save();
	preempt_schedule_irqoff();
	local_irq_restore(flags);
	return true;
}

void yield(void)
{
	if (!sched_running)
		return;
	unsigned long flags = local_irq_save();
	if (preempt_count() || this_cpu()->irq_depth)
		atomic_sleep_bug("yield()");
	this_thread()->slice_expired = true;
	sched_switch_out();
	local_irq_restore(flags);
}

bool sched_can_sleep(void)
{
	return sched_running && !irqs_disabled() && preempt_count() == 0 &&
	       this_cpu()->irq_depth == 0 && this_thread() != this_rq()->idle;
}

/* ---- Hooks from the lock layer and the interrupt path. */

extern bool percpu_ready;

_Static_assert(offsetof(struct cpu, id) == LOCK_CPU_ID_OFFSET,
               "kernel/lock/arch_kernel.h must follow struct cpu's id");
_Static_assert(offsetof(struct cpu, preempt_count) == LOCK_CPU_PREEMPT_COUNT_OFFSET,
               "kernel/lock/arch_kernel.h must follow struct cpu's preempt_count");
_Static_assert(offsetof(struct cpu, resched) == LOCK_CPU_RESCHED_OFFSET &&
                   sizeof(((struct cpu *)0)->resched) == 1,
               "kernel/lock/arch_kernel.h must follow struct cpu's resched");

/* A spin_unlock() let the count fall to zero with a reschedule pending. */
void lock_preempt_resched(void)
{
	preempt_check();
}

/*
 * cond_resched_lock() has dropped its breakable lock.  A breakable section
 * is bracketed by one preempt_disable() of its own, like every spinning
 * lock; that level is let go here while the lock is not held.  A deeper
 * count means other locks are held: no switch.
 */
void lock_cond_resched(void)
{
	if (!percpu_ready || model == PREEMPT_NONE || !sched_running || !this_cpu()->resched)
		return;
	int pc = preempt_count();
	if (pc > 1 || irqs_disabled() || this_cpu()->irq_depth)
		return;
	if (pc == 1)
		preempt_count_dec();
	cond_resched();
	if (pc == 1)
		preempt_count_inc();
}

void sched_irq_enter(void)
{
	struct rq *rq;

	if (!sched_running)
		return;
	rq = this_rq();
	if (rq->idle_halted) {
		rq->idle_halted = false;
		watchdog_idle_exit();
	}
}

/* The return from an interrupt (trap(), interrupts still off): full and rt preempt here. */
void sched_irq_exit(struct trapframe *tf)
{
	if (!model_preempts() || !this_cpu()->resched || !sched_running)
		return;
	if (this_cpu()->irq_depth || !(tf->rflags & RFLAGS_IF) || preempt_count())
		return;
	preempt_schedule_irqoff();
}

/* ---- Waking. */

bool wake_up_thread(struct thread *t)
{
	unsigned long flags = local_irq_save();
	struct rq *rq = thread_rq_lock(t);
	bool woke = false;

	if (t->state == THREAD_BLOCKED) {
		t->state = THREAD_RUNNING;
		woke = true;
		/* Still on its CPU (switching out or not yet): schedule() keeps it. */
		if (rq->curr != t && !t->queued) {
			enqueue(rq, t, false);
			check_preempt(rq, t);
		}
	}
	rq_unlock(rq);
	local_irq_restore(flags);
	return woke;
}

/* ---- Sleeping to a deadline. */

void sched_timed_block(uint64_t deadline)
{
	struct thread *me = this_thread();
	unsigned long flags = local_irq_save();

	if (preempt_count() || this_cpu()->irq_depth)
		atomic_sleep_bug("a timed sleep");
	sched_timer_arm(me, deadline);
	sched_switch_out();
	local_irq_restore(flags);
	sched_timer_cancel(me);
}

void sleep_until(uint64_t deadline)
{
	if (!sched_can_sleep()) {
		/* Before the scheduler, or where nothing may sleep: wait in place. */
		while ((int64_t)(rdtsc() - deadline) < 0)
			cpu_relax();
		return;
	}
	while ((int64_t)(rdtsc() - deadline) < 0) {
		unsigned long flags = local_irq_save();
		this_thread()->state = THREAD_BLOCKED;
		sched_timed_block(deadline);
		this_thread()->state = THREAD_RUNNING;
		local_irq_restore(flags);
	}
}

void sleep_ns(uint64_t ns)
{
	sleep_until(rdtsc() + ns_to_tsc(ns));
}

void msleep(uint64_t ms)
{
	sleep_ns(ms * NSEC_PER_MSEC);
}

/* ---- Threads: creation, start, exit, join. */

static void pool_take_lock(unsigned long *flags)
{
	*flags = local_irq_save();
	while (__atomic_exchange_n(&pool_lock, 1, __ATOMIC_ACQUIRE))
		cpu_relax();
}

static void pool_drop_lock(unsigned long flags)
{
	__atomic_store_n(&pool_lock, 0, __ATOMIC_RELEASE);
	local_irq_restore(flags);
}

static struct thread *pool_alloc(void)
{
	unsigned long flags;
	struct thread *t = NULL;

	pool_take_lock(&flags);
	for (int i = 0; i < MAX_THREADS; i++) {
		if (!pool_busy[i]) {
			pool_busy[i] = true;
			t = &thread_pool[i];
			break;
		}
	}
	pool_drop_lock(flags);
	return t;
}

/* The slot keeps its stack for the next thread. */
static void pool_free(struct thread *t)
{
	unsigned long flags;

	pool_take_lock(&flags);
	pool_busy[t - thread_pool] = false;
	pool_drop_lock(flags);
}

/* Guarded (an unmapped page below) and kept by its pool slot for the next thread. */
static void *stack_alloc(size_t size)
{
	void *base = kstack_alloc(size);
	if (!base)
		panic("no memory for a %zu-byte thread stack", size);
	return base;
}

static void copy_name(struct thread *t, const char *name)
{
	strlcpy(t->name, name ? name : "thread", sizeof(t->name));
}

extern char sched_thread_entry[];

/* The stack a first switch to t pops: six zeroed registers, then sched_thread_entry. */
static void prepare_stack(struct thread *t)
{
	uint64_t *top = (uint64_t *)((char *)t->stack + t->stack_size);

	*(uint64_t *)t->stack = STACK_MAGIC;
	top[-1] = 0; /* a zero return address ends backtraces */
	top[-2] = 0; /* keeps the entry's call 16-byte aligned */
	top[-3] = (uint64_t)sched_thread_entry;
	for (int i = 4; i <= 9; i++)
		top[-i] = 0; /* rbp, rbx, r12..r15 */
	t->rsp = (uint64_t)&top[-9];
}

static void thread_fields_init(struct thread *t, const char *name, int prio, int cpu)
{
	t->id = __atomic_fetch_add(&next_thread_id, 1, __ATOMIC_RELAXED);
	copy_name(t, name);
	t->state = THREAD_NEW;
	t->prio = t->base_prio = prio;
	t->cpu = cpu >= 0 ? cpu : smp_processor_id();
	t->queued = false;
	t->on_cpu = 0;
	t->slice_expired = false;
	t->migrate_to = -1;
	t->migrate_disable = 0;
	cpumask_clear(&t->affinity);
	if (cpu >= 0) {
		cpumask_set_cpu(cpu, &t->affinity);
	} else {
		int c;
		for_each_online_cpu(c)
			cpumask_set_cpu(c, &t->affinity);
	}
	link_init(&t->rq_link);
	link_init(&t->timer_link);
	t->timer_cpu = -1;
	t->timer_firing = false;
	t->pi_waiters = t->blocked_on = NULL;
	t->reaped = false;
	t->nvcsw = t->nivcsw = t->runtime_tsc = t->switched_in_tsc = t->migrations = 0;
}

struct thread *thread_create(void (*fn)(void *), void *arg, const char *name, int prio, int cpu)
{
	if (!sched_running)
		panic("thread_create(%s) before sched_init()", name ? name : "?");
	if (cpu != THREAD_ANY_CPU && !cpu_online(cpu))
		return NULL;
	if (prio < 0)
		prio = 0;
	if (prio > SCHED_PRIO_MAX)
		prio = SCHED_PRIO_MAX;
	struct thread *t = pool_alloc();
	if (!t)
		return NULL;
	if (!t->stack) {
		t->stack_size = THREAD_STACK_SIZE;
		t->stack = stack_alloc(THREAD_STACK_SIZE);
	}
	thread_fields_init(t, name, prio, cpu);
	t->pool = true;
	t->fn = fn;
	t->arg = arg;
	prepare_stack(t);
	return t;
}

/* Where a new thread runs soonest: an idle allowed CPU, else the least loaded. */
static int select_cpu(struct thread *t)
{
	int cpu, best = -1, best_load = INT32_MAX, me = smp_processor_id();

	if (cpumask_weight(&t->affinity) == 1)
		return cpumask_next(-1, &t->affinity);
	for_each_cpu(cpu, &t->affinity) {
		if (!cpu_online(cpu))
			continue;
		struct rq *rq = &runqueues[cpu];
		int load = 2 * READ_ONCE(rq->nr_queued) + (READ_ONCE(rq->curr) != rq->idle ? 2 : 0);
		if (cpu == me)
			load++; /* the creator is still running here */
		if (load < best_load) {
			best = cpu;
			best_load = load;
		}
	}
	return best >= 0 ? best : me;
}

void thread_start(struct thread *t)
{
	unsigned long flags = local_irq_save();

	if (t->state != THREAD_NEW)
		panic("thread_start(%s): already started", t->name);
	int cpu = select_cpu(t);
	__atomic_store_n(&t->cpu, cpu, __ATOMIC_RELEASE);
	struct rq *rq = &runqueues[cpu];
	rq_lock(rq);
	t->state = THREAD_RUNNING;
	enqueue(rq, t, false);
	check_preempt(rq, t);
	rq_unlock(rq);
	local_irq_restore(flags);
	preempt_check();
}

struct thread *thread_run(void (*fn)(void *), void *arg, const char *name, int prio, int cpu)
{
	struct thread *t = thread_create(fn, arg, name, prio, cpu);
	if (t)
		thread_start(t);
	return t;
}

void sched_thread_start(struct thread *prev)
{
	finish_switch(prev);
	preempt_count_dec();
	local_irq_enable();
	struct thread *me = this_thread();
	me->fn(me->arg);
	thread_exit();
}

__noreturn void thread_exit(void)
{
	struct thread *me = this_thread();

	local_irq_disable();
	if (me->blocked_on || me->pi_waiters)
		kprintf("# sched: thread %d (%s) exits owning or waiting for an rt-mutex\n", me->id,
		        me->name);
	sched_timer_cancel(me);
	me->state = THREAD_DEAD;
	preempt_count_inc();
	__schedule(false);
	panic("a dead thread ran again");
}

static void reap(struct thread *t)
{
	__atomic_store_n(&t->reaped, true, __ATOMIC_RELEASE);
	wake_up(&exit_wq);
}

bool thread_join(struct thread *t, uint64_t timeout_ms)
{
	if (t->state != THREAD_NEW) {
		uint64_t deadline = rdtsc() + ns_to_tsc(timeout_ms * NSEC_PER_MSEC);
		if (!wait_event_until(exit_wq, __atomic_load_n(&t->reaped, __ATOMIC_ACQUIRE),
		                      deadline))
			return false;
	}
	if (t->pool)
		pool_free(t);
	return true;
}

/* ---- Affinity, migration, priority. */

int thread_migrate(struct thread *t, int cpu)
{
	if (!cpu_online(cpu) || !cpumask_test_cpu(cpu, &t->affinity))
		return -1;
	unsigned long flags = local_irq_save();
	for (;;) {
		struct rq *rq = thread_rq_lock(t);
		if (t->cpu == cpu && t->migrate_to < 0) {
			rq_unlock(rq);
			break;
		}
		if (rq->curr == t) {
			/* Running: it moves when it next switches out (finish_switch). */
			t->migrate_to = cpu == t->cpu ? -1 : cpu;
			rq_unlock(rq);
			if (t == this_thread()) {
				if (preempt_count() || this_cpu()->irq_depth)
					atomic_sleep_bug("thread_migrate(self)");
				sched_switch_out();
			} else {
				resched_cpu(rq->cpu);
			}
			break;
		}
		if (t->queued) {
			dequeue(rq, t);
			__atomic_store_n(&t->cpu, cpu, __ATOMIC_RELEASE);
			rq_unlock(rq);
			struct rq *drq = &runqueues[cpu];
			rq_lock(drq);
			t->migrations++;
			enqueue(drq, t, false);
			check_preempt(drq, t);
			rq_unlock(drq);
			break;
		}
		if (t->state == THREAD_RUNNING) {
			rq_unlock(rq); /* in transit between two CPUs: let it land */
			cpu_relax();
			continue;
		}
		/* New, asleep or dead: it wakes up there. */
		__atomic_store_n(&t->cpu, cpu, __ATOMIC_RELEASE);
		t->migrations++;
		rq_unlock(rq);
		break;
	}
	local_irq_restore(flags);
	preempt_check();
	return 0;
}

int thread_set_affinity(struct thread *t, const cpumask_t *mask)
{
	int cpu, dest = -1;

	for_each_cpu(cpu, mask)
		if (cpu_online(cpu) && dest < 0)
			dest = cpu;
	if (dest < 0)
		return -1;
	unsigned long flags = local_irq_save();
	struct rq *rq = thread_rq_lock(t);
	t->affinity = *mask;
	bool stay = cpumask_test_cpu(t->cpu, mask);
	rq_unlock(rq);
	local_irq_restore(flags);
	return stay ? 0 : thread_migrate(t, dest);
}

void sched_change_prio(struct thread *t, int prio)
{
	struct rq *rq = thread_rq_lock(t);

	if (t->prio != prio) {
		if (t->queued) {
			dequeue(rq, t);
			t->prio = prio;
			enqueue(rq, t, false);
			if (prio > rq->curr->prio)
				resched_cpu(rq->cpu);
		} else {
			t->prio = prio;
			if (rq->curr == t && top_queued_prio(rq) > prio)
				resched_cpu(rq->cpu);
		}
	}
	rq_unlock(rq);
}

void thread_set_prio(struct thread *t, int prio)
{
	if (prio < 0)
		prio = 0;
	if (prio > SCHED_PRIO_MAX)
		prio = SCHED_PRIO_MAX;
	pi_set_base_prio(t, prio);
	preempt_check();
}

int thread_prio(const struct thread *t)
{
	return READ_ONCE(t->prio);
}

void migrate_disable(void)
{
	this_thread()->migrate_disable++;
}

void migrate_enable(void)
{
	this_thread()->migrate_disable--;
}

/* ---- The idle loop and the balancer. */

/*
 * Take one queued thread that may run here from a busy CPU (interrupts
 * off).  1: pulled one; 0: nothing to pull; -1: a candidate CPU's lock was
 * busy.  It never waits for another CPU's run queue lock: under vCPU
 * overcommit a ticket waiter queued behind a descheduled vCPU waits a host
 * time slice, and an idle CPU has better things to do (look again).
 */
static int try_pull(struct rq *me_rq)
{
	int me = me_rq->cpu, busy = 0;

	for (int i = 1; i < ncpus; i++) {
		int cpu = (me + i) % ncpus;
		struct rq *src = &runqueues[cpu];
		struct thread *got = NULL;

		/* An idle CPU with queued work is about to run it itself. */
		if (!READ_ONCE(src->nr_queued) || READ_ONCE(src->curr) == src->idle)
			continue;
		if (!ticket_trylock(&src->lock)) {
			busy = -1;
			continue;
		}
		for (int p = top_queued_prio(src); p >= 0 && !got; p--) {
			struct sched_link *pos;
			for (pos = src->queue[p].next; pos != &src->queue[p]; pos = pos->next) {
				struct thread *t = link_entry(pos, struct thread, rq_link);
				if (cpumask_test_cpu(me, &t->affinity) && !t->migrate_disable &&
				    t->migrate_to < 0) {
					got = t;
					break;
				}
			}
		}
		cpumask_t more;
		cpumask_clear(&more);
		if (got) {
			dequeue(src, got);
			__atomic_store_n(&got->cpu, me, __ATOMIC_RELEASE);
			if (src->nr_queued) /* still more waiting there: pass the word on */
				more = first_queued(src)->affinity;
		}
		rq_unlock(src);
		if (got) {
			cpumask_clear_cpu(me, &idle_mask);
			kick_idle(cpu, &more);
			rq_lock(me_rq);
			got->migrations++;
			me_rq->stats.pulls++;
			enqueue(me_rq, got, false);
			rq_unlock(me_rq);
			return 1;
		}
	}
	return busy;
}

__noreturn void sched_idle_loop(void)
{
	struct rq *rq = this_rq();
	int me = rq->cpu;

	__atomic_store_n(&rq->adopted, true, __ATOMIC_RELEASE);
	uint64_t retry_until = 0;
	for (;;) {
		local_irq_disable();
		cpumask_set_cpu(me, &idle_mask);
		/* Pairs with kick_idle_n(): it queues then looks; we publish then look. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		int pulled = rq->nr_queued ? 0 : try_pull(rq);
		if (rq->nr_queued || this_cpu()->resched) {
			cpumask_clear_cpu(me, &idle_mask);
			schedule();
			retry_until = 0;
			continue;
		}
		/*
		 * A busy lock: the kick usually comes from inside that CPU's
		 * scheduler, which still holds it.  Look again for a while.
		 */
		if (pulled < 0) {
			uint64_t now = rdtsc();
			if (!retry_until)
				retry_until = now + pull_retry_cycles;
			if ((int64_t)(now - retry_until) < 0) {
				local_irq_enable();
				cpu_relax();
				continue;
			}
		}
		retry_until = 0;
		rq_lock(rq);
		rq_program_timer(rq, rdtsc(), true);
		rq_unlock(rq);
		rq->stats.idle_entries++;
		irq_enable_hook();
		/* No TLB shootdown IPIs while idle: catch up on wake-up instead (tlb.h). */
		tlb_idle_enter();
		watchdog_idle_enter();
		rq->idle_halted = true;
		/* sti takes effect after hlt starts: a wake-up IPI cannot slip in between. */
		__asm__ volatile("sti; hlt" ::: "memory");
		local_irq_disable();
		if (rq->idle_halted) {
			rq->idle_halted = false;
			watchdog_idle_exit();
		}
		tlb_idle_exit();
		cpumask_clear_cpu(me, &idle_mask);
	}
}

static void idle_entry(void *arg)
{
	(void)arg;
	sched_idle_loop();
}

/* ---- smp_launch(): launched work runs in a thread of its own on each AP. */

static volatile uint64_t launch_seq[MAX_CPUS];
static struct wait_queue launch_wq[MAX_CPUS];

bool smp_idle_work(void);

bool sched_launch_notify(int cpu)
{
	if (!sched_running || !runqueues[cpu].adopted)
		return false;
	__atomic_fetch_add(&launch_seq[cpu], 1, __ATOMIC_SEQ_CST);
	wake_up(&launch_wq[cpu]);
	return true;
}

static void launch_worker(void *arg)
{
	int cpu = (int)(uintptr_t)arg;

	for (;;) {
		uint64_t seen = __atomic_load_n(&launch_seq[cpu], __ATOMIC_SEQ_CST);
		local_irq_disable();
		if (smp_idle_work()) /* runs the work with interrupts on */
			continue;
		local_irq_enable();
		wait_event(launch_wq[cpu],
		           __atomic_load_n(&launch_seq[cpu], __ATOMIC_SEQ_CST) != seen);
	}
}

/* ---- Start-up. */

static void rq_init(int cpu)
{
	struct rq *rq = &runqueues[cpu];

	ticket_lock_init(&rq->lock);
	lock_set_name(&rq->lock, "sched.rq");
	rq->cpu = cpu;
	for (int p = 0; p < SCHED_NR_PRIO; p++)
		link_init(&rq->queue[p]);
	link_init(&rq->timers);
	rq->last_tick = rdtsc();
}

static void idle_thread_init(int cpu, struct thread *t)
{
	char name[THREAD_NAME_LEN];

	snprintf(name, sizeof(name), "idle/%d", cpu);
	thread_fields_init(t, name, 0, cpu);
	t->prio = t->base_prio = SCHED_PRIO_IDLE;
	t->state = THREAD_RUNNING;
}

extern char boot_stack_top[];

void sched_init(void)
{
	int cpu;
	char name[THREAD_NAME_LEN];

	model = config.preempt;
	tick_cycles = ns_to_tsc(NSEC_PER_SEC / TICK_HZ);
	slice_cycles = ns_to_tsc(SCHED_SLICE_NS);
	idle_check_cycles = ns_to_tsc(IDLE_CHECK_MS * NSEC_PER_MSEC);
	pull_retry_cycles = ns_to_tsc(PULL_RETRY_US * NSEC_PER_USEC);
	wait_queue_init(&exit_wq);

	unsigned long flags = local_irq_save();
	for_each_online_cpu(cpu) {
		struct rq *rq = &runqueues[cpu];
		struct thread *idle = &idle_threads[cpu];
		rq_init(cpu);
		wait_queue_init(&launch_wq[cpu]);
		idle_thread_init(cpu, idle);
		rq->idle = idle;
		if (cpu == 0)
			continue;
		/* The AP's boot context becomes its idle thread (sched_idle_loop). */
		idle->on_cpu = 1;
		rq->curr = idle;
		cpus[cpu].sched_current = idle;
	}
	/* CPU 0: the boot context is thread 0, "main"; its idle thread gets a stack. */
	thread_fields_init(&boot_thread, "main", SCHED_PRIO_DEFAULT, 0);
	boot_thread.id = 0; /* the idle threads took 1..N */
	boot_thread.state = THREAD_RUNNING;
	boot_thread.on_cpu = 1;
	boot_thread.switched_in_tsc = rdtsc();
	runqueues[0].curr = &boot_thread;
	cpus[0].sched_current = &boot_thread;
	struct thread *idle0 = &idle_threads[0];
	idle0->stack_size = THREAD_STACK_SIZE;
	idle0->stack = stack_alloc(THREAD_STACK_SIZE);
	idle0->fn = idle_entry;
	prepare_stack(idle0);

	register_irq_handler(VEC_RESCHED, resched_ipi);
	timer_set_tick_hook(sched_tick);
	rt_spinlocks = model == PREEMPT_RT;
	__atomic_store_n(&sched_running, true, __ATOMIC_RELEASE);
	runqueues[0].adopted = true;

	/* CPU 0 leaves the periodic tick for the one-shot timer. */
	struct rq *rq0 = &runqueues[0];
	rq_lock(rq0);
	rq0->last_tick = rdtsc();
	rq_program_timer(rq0, rdtsc(), true);
	rq_unlock(rq0);
	local_irq_restore(flags);

	/* Wake the APs into sched_idle_loop, then give each a launch worker. */
	for_each_online_cpu(cpu)
		if (cpu != 0)
			arch_kick_cpu(cpu);
	for_each_online_cpu(cpu) {
		if (cpu == 0)
			continue;
		if (!spin_until(__atomic_load_n(&runqueues[cpu].adopted, __ATOMIC_ACQUIRE),
		                ADOPT_TIMEOUT_MS * NSEC_PER_MSEC))
			kprintf("# sched: CPU %d did not enter its idle loop\n", cpu);
		snprintf(name, sizeof(name), "launch/%d", cpu);
		if (!thread_run(launch_worker, (void *)(uintptr_t)cpu, name, SCHED_PRIO_DEFAULT,
		                cpu))
			panic("no thread for %s", name);
	}
	kprintf("# sched: preempt=%s, %d CPU%s, %d priorities, slice %lu ms, one-shot timer: "
	        "%d Hz tick while busy, none when idle%s\n",
	        preempt_name(model), num_online_cpus(), num_online_cpus() == 1 ? "" : "s",
	        SCHED_NR_PRIO, SCHED_SLICE_NS / NSEC_PER_MSEC, TICK_HZ,
	        model == PREEMPT_RT ? "; spinlock_t is an rt-mutex" : "");
}

/* ---- Statistics. */

void sched_get_stats(int cpu, struct sched_stats *out)
{
	*out = runqueues[cpu].stats;
}

bool sched_cpu_idle(int cpu)
{
	return runqueues[cpu].idle_halted;
}

static const char *state_name(int s)
{
	switch (s) {
	case THREAD_NEW:
		return "new";
	case THREAD_RUNNING:
		return "running";
	case THREAD_BLOCKED:
		return "blocked";
	case THREAD_DEAD:
		return "dead";
	}
	return "?";
}

static void dump_one(const struct thread *t)
{
	kprintf("# thread %d %s cpu=%d prio=%d/%d state=%s%s switches=%lu/%lu runtime_us=%lu\n",
	        t->id, t->name, t->cpu, t->prio, t->base_prio, state_name(t->state),
	        t->on_cpu ? " on-cpu" : "", t->nvcsw, t->nivcsw, tsc_to_ns(t->runtime_tsc) / 1000);
}

void sched_dump_threads(void)
{
	int cpu;

	for_each_online_cpu(cpu) {
		struct rq *rq = &runqueues[cpu];
		kprintf("# rq %d: curr %s queued %d idle_mask %d halted %d resched %d switches %lu "
		        "pulls %lu idle_entries %lu\n",
		        cpu, rq->curr->name, rq->nr_queued, cpumask_test_cpu(cpu, &idle_mask),
		        rq->idle_halted, cpus[cpu].resched, rq->stats.switches, rq->stats.pulls,
		        rq->stats.idle_entries);
	}

	dump_one(&boot_thread);
	for_each_online_cpu(cpu)
		dump_one(&idle_threads[cpu]);
	for (int i = 0; i < MAX_THREADS; i++)
		if (pool_busy[i])
			dump_one(&thread_pool[i]);
}
