/*
 * The idle loop and the balancer: a CPU with nothing to run takes a queued
 * thread from a busy one, or halts with its timer armed only for its own
 * sleepers; and the launch workers behind smp_launch().
 */
#include "apic.h"
#include "internal.h"
#include "irq.h"
#include "kernel.h"
#include "tlb.h"

#define PULL_RETRY_US 2000

cpumask_t idle_mask;
static uint64_t pull_retry_cycles;
static volatile uint64_t launch_seq[MAX_CPUS];
static struct wait_queue launch_wq[MAX_CPUS];

void sched_idle_init(void)
{
	pull_retry_cycles = ns_to_tsc(PULL_RETRY_US * NSEC_PER_USEC);
	for (int cpu = 0; cpu < MAX_CPUS; cpu++)
		wait_queue_init(&launch_wq[cpu]);
}

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

		if (!READ_ONCE(src->nr_queued))
			continue;
		/*
		 * An idle CPU with queued work is about to run it itself, or
		 * is in __schedule() between kicking the idle CPUs for the rest
		 * and making its pick curr: the kick that woke us may be that
		 * one.  Not "nothing here": look again (see below).
		 */
		if (READ_ONCE(src->curr) == src->idle || !ticket_trylock(&src->lock)) {
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

/*
 * Halting after a busy lock hid a thread this CPU may take: wake up to look
 * again (rq locked).  The kick that CPU sent was this CPU's only wake-up;
 * its lock holder, a vCPU the host stopped, can stay on it longer than the
 * retries above, and the busy tick that repeats kicks is that CPU's to
 * take, not this one's to count on.  The tick handler re-arms for this
 * CPU's own events when it fires (rq_program_timer() with force).
 */
static void arm_pull_retry(struct rq *rq)
{
	uint64_t at = rdtsc() + pull_retry_cycles;

	if (rq->timer_armed && (int64_t)(rq->next_event - at) <= 0)
		return;
	rq->stats.pull_retries++;
	rq->next_event = at;
	rq->timer_armed = true;
	if (!lapic_timer_deadline(at))
		lapic_timer_oneshot(PULL_RETRY_US * NSEC_PER_USEC);
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
		if (pulled < 0)
			arm_pull_retry(rq);
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

void sched_idle_entry(void *arg)
{
	(void)arg;
	sched_idle_loop();
}

/* ---- smp_launch(): launched work runs in a thread of its own on each AP. */

bool smp_idle_work(void);

bool sched_launch_notify(int cpu)
{
	if (!sched_running || !runqueues[cpu].adopted)
		return false;
	__atomic_fetch_add(&launch_seq[cpu], 1, __ATOMIC_SEQ_CST);
	wake_up(&launch_wq[cpu]);
	return true;
}

void sched_launch_worker(void *arg)
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
