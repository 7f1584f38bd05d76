/*
 * Wait queues.
 *
 * A sleeper queues itself and marks itself blocked under the queue's lock,
 * then tests its condition, then schedules; a waker makes the condition
 * true, then wakes the queue under the same lock.  Either the waker's lock
 * section comes first -- then the sleeper's test, after taking the lock,
 * sees the condition -- or the sleeper's does, and the waker finds it
 * queued and blocked and wakes it.  A wake-up that arrives between the
 * test and schedule() sets the thread running again, and schedule() then
 * keeps it on the CPU: no wake-up is lost.  Every wait re-tests its
 * condition, so a spurious wake-up costs a loop and nothing else.
 *
 * The queue's lock is a test-and-set word held with interrupts off (wakers
 * may be interrupt handlers); it nests outside the run queue locks.
 */
#include "internal.h"
#include "irq.h"

static unsigned long wq_lock(struct wait_queue *wq)
{
	unsigned long flags = local_irq_save();

	while (__atomic_exchange_n(&wq->lock, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&wq->lock, __ATOMIC_RELAXED))
			cpu_relax();
	return flags;
}

static void wq_unlock(struct wait_queue *wq, unsigned long flags)
{
	__atomic_store_n(&wq->lock, 0, __ATOMIC_RELEASE);
	local_irq_restore(flags);
}

void wait_queue_init(struct wait_queue *wq)
{
	wq->lock = 0;
	link_init(&wq->head);
}

void prepare_to_wait(struct wait_queue *wq, struct wait_entry *e)
{
	struct thread *me = this_thread();
	unsigned long flags = wq_lock(wq);

	if (e->thread != me) { /* first time round this wait */
		e->thread = me;
		link_init(&e->link);
	}
	if (link_empty(&e->link))
		link_add_tail(&e->link, &wq->head);
	me->state = THREAD_BLOCKED;
	wq_unlock(wq, flags);
}

void finish_wait(struct wait_queue *wq, struct wait_entry *e)
{
	unsigned long flags = wq_lock(wq);

	this_thread()->state = THREAD_RUNNING;
	if (!link_empty(&e->link))
		link_del(&e->link);
	e->thread = NULL;
	wq_unlock(wq, flags);
}

static int wake(struct wait_queue *wq, int max)
{
	unsigned long flags = wq_lock(wq);
	struct sched_link *pos = wq->head.next;
	int n = 0;

	while (pos != &wq->head && n < max) {
		struct wait_entry *e = link_entry(pos, struct wait_entry, link);
		pos = pos->next;
		if (wake_up_thread(e->thread)) {
			/* Off the queue: a second wake_up_one() goes to the next sleeper. */
			link_del(&e->link);
			n++;
		}
	}
	wq_unlock(wq, flags);
	preempt_check();
	return n;
}

int wake_up(struct wait_queue *wq)
{
	return wake(wq, INT32_MAX);
}

int wake_up_one(struct wait_queue *wq)
{
	return wake(wq, 1);
}
