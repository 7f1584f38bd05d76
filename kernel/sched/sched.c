/*
 * The scheduler: per-CPU run queues, the context switch and its
 * bookkeeping, preemption points, waking, start-up.  The rest of it:
 * timer.c (the one-shot timer, the tick, timed sleep), thread.c (the thread
 * pool, creation, join, affinity, migration, priority), idle.c (the idle
 * loop, the balancer, smp_launch's workers), wait.c (wait queues) and
 * rtmutex.c (priority inheritance, preempt=rt's spinlock_t).
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
#include "tlb.h"

#define ADOPT_TIMEOUT_MS 1000

struct rq runqueues[MAX_CPUS];
volatile bool sched_running;
static enum preempt_model model = PREEMPT_FULL;
static uint64_t slice_cycles;

static struct thread boot_thread;
static struct thread idle_threads[MAX_CPUS];

enum preempt_model sched_model(void)
{
	return model;
}

static bool model_preempts(void)
{
	return model == PREEMPT_FULL || model == PREEMPT_RT;
}

/* ---- Run queue lists. */

void enqueue(struct rq *rq, struct thread *t, bool head)
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

void dequeue(struct rq *rq, struct thread *t)
{
	link_del(&t->rq_link);
	if (link_empty(&rq->queue[t->prio]))
		rq->bitmap &= ~(1u << t->prio);
	rq->nr_queued--;
	t->queued = false;
}

int top_queued_prio(const struct rq *rq)
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

void resched_cpu(int cpu)
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

void kick_idle(int busy, const cpumask_t *aff)
{
	kick_idle_n(busy, aff, 1);
}

struct thread *first_queued(struct rq *rq)
{
	return link_entry(rq->queue[31 - __builtin_clz(rq->bitmap)].next, struct thread, rq_link);
}

static void kick_idle_for(struct rq *rq, struct thread *t)
{
	kick_idle(rq->cpu, &t->affinity);
}

/*
 * t was just queued on rq (locked): should it take the CPU?  If it waits --
 * behind an equal or higher priority, or, under none and voluntary, until
 * the running thread lets go -- an idle CPU may run it instead.
 */
void check_preempt(struct rq *rq, struct thread *t)
{
	bool higher = t->prio > rq->curr->prio;

	if (higher)
		resched_cpu(rq->cpu);
	if (!higher || (!model_preempts() && rq->curr != rq->idle))
		kick_idle_for(rq, t);
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
		thread_reap(prev);
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

void sched_check_may_switch(const char *what)
{
	if (preempt_count() || this_cpu()->irq_depth)
		atomic_sleep_bug(what);
}

void schedule(void)
{
	if (!sched_running)
		return;
	unsigned long flags = local_irq_save();
	sched_check_may_switch("schedule()");
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
	sched_check_may_switch("yield()");
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
	if (model == PREEMPT_NONE || !sched_running || !this_cpu()->resched)
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
	slice_cycles = ns_to_tsc(SCHED_SLICE_NS);
	/*
	 * The spin-timeout (lock_debug.h) bounds how long a lock may be held,
	 * and the run queue locks are held across IPIs; with more vCPUs than
	 * host CPUs a holder's vCPU can go unrun for seconds (2 s seen at 64
	 * vCPUs on 2), so it scales with the overcommit, as the watchdog does.
	 */
	if (config.host_cpus > 0 && num_online_cpus() > config.host_cpus) {
		uint64_t over = (uint64_t)(num_online_cpus() + config.host_cpus - 1) /
		                (uint64_t)config.host_cpus;
		lock_spin_timeout_ns = LOCK_SPIN_TIMEOUT_NS * over;
		kprintf("# lock: spin-timeout %lu ms (%lu ms times the vCPU overcommit, %lu)\n",
		        (unsigned long)(lock_spin_timeout_ns / NSEC_PER_MSEC),
		        (unsigned long)(LOCK_SPIN_TIMEOUT_NS / NSEC_PER_MSEC), over);
	}
	sched_timer_init();
	sched_idle_init();

	unsigned long flags = local_irq_save();
	for_each_online_cpu(cpu) {
		struct rq *rq = &runqueues[cpu];
		struct thread *idle = &idle_threads[cpu];
		rq_init(cpu);
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
	idle0->stack = thread_stack_alloc(THREAD_STACK_SIZE);
	idle0->fn = sched_idle_entry;
	thread_prepare_stack(idle0);

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
		if (!thread_run(sched_launch_worker, (void *)(uintptr_t)cpu, name,
		                SCHED_PRIO_DEFAULT, cpu))
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

void sched_dump_threads(void)
{
	int cpu;

	for_each_online_cpu(cpu) {
		struct rq *rq = &runqueues[cpu];
		kprintf("# rq %d: curr %s queued %d idle_mask %d halted %d resched %d switches %lu "
		        "pulls %lu idle_entries %lu ticks %lu\n",
		        cpu, rq->curr->name, rq->nr_queued, cpumask_test_cpu(cpu, &idle_mask),
		        rq->idle_halted, cpus[cpu].resched, rq->stats.switches, rq->stats.pulls,
		        rq->stats.idle_entries, rq->stats.ticks);
	}

	thread_dump(&boot_thread);
	for_each_online_cpu(cpu)
		thread_dump(&idle_threads[cpu]);
	thread_pool_dump();
}
