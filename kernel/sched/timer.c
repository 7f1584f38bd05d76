/*
 * The scheduler's timer: each CPU's LAPIC timer armed one-shot (or
 * TSC-deadline) for its next event, the tick that wakes sleepers and ends
 * slices, and timed sleep.  The events are described at the top of sched.c.
 */
#include "apic.h"
#include "internal.h"
#include "kernel.h"

#define IDLE_CHECK_MS 500
#define EXPIRE_BATCH 16 /* sleepers woken per interrupt; the timer re-fires at once for more */

static uint64_t tick_cycles, idle_check_cycles;

void sched_timer_init(void)
{
	tick_cycles = ns_to_tsc(NSEC_PER_SEC / TICK_HZ);
	idle_check_cycles = ns_to_tsc(IDLE_CHECK_MS * NSEC_PER_MSEC);
}

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
void rq_program_timer(struct rq *rq, uint64_t now, bool force)
{
	uint64_t target = UINT64_MAX;
	struct thread *curr = rq->curr;

	if (!link_empty(&rq->timers))
		earliest(&target, first_timer(rq)->wake_tsc);
	if (curr != rq->idle) {
		earliest(&target, rq->last_tick + tick_cycles);
		/*
		 * The slice end is an event until the tick has seen it.  After
		 * that, under none and voluntary (or with preemption disabled)
		 * the thread runs on past it: arming for a moment already gone
		 * would fire at once, every time, and the CPU would do nothing
		 * but take timer interrupts -- in virtual time (docs/clock.md)
		 * not a single instruction of the thread between them.
		 */
		if ((rq->bitmap & (1u << curr->prio)) && !curr->slice_expired)
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
	/*
	 * Only an armed event still ahead is kept.  One already due has its
	 * interrupt pending (re-arming costs one more tick) or lost (a test
	 * reprogrammed the timer, or the interrupt never came): kept, it would
	 * stand "earlier" than every later target, and a busy CPU, never idle
	 * to force a re-arm, would run on with no tick and no slice end.
	 */
	bool ahead = rq->timer_armed && (int64_t)(rq->next_event - rdtsc()) > 0;
	if (ahead && rq->next_event == target)
		return;
	if (!force && ahead && (int64_t)(rq->next_event - target) <= 0)
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
void sched_tick(struct trapframe *tf)
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

/* ---- Sleeping to a deadline. */

void sched_timed_block(uint64_t deadline)
{
	struct thread *me = this_thread();
	unsigned long flags = local_irq_save();

	sched_check_may_switch("a timed sleep");
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
