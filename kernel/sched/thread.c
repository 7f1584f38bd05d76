/*
 * Threads: a fixed pool of them with guarded stacks kept between uses,
 * creation, placement on start, join, and the calls that move a thread
 * (affinity, migration) or change its priority.
 */
#include "internal.h"
#include "kernel.h"
#include "mm.h"

#define MAX_THREADS 256

static struct thread thread_pool[MAX_THREADS];
static bool pool_busy[MAX_THREADS];
static volatile int pool_lock;
static int next_thread_id = 1;
static DEFINE_WAIT_QUEUE(exit_wq);

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
void *thread_stack_alloc(size_t size)
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
void thread_prepare_stack(struct thread *t)
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

void thread_fields_init(struct thread *t, const char *name, int prio, int cpu)
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
		t->stack = thread_stack_alloc(THREAD_STACK_SIZE);
	}
	thread_fields_init(t, name, prio, cpu);
	t->pool = true;
	t->fn = fn;
	t->arg = arg;
	thread_prepare_stack(t);
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

void thread_reap(struct thread *t)
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
				sched_check_may_switch("thread_migrate(self)");
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
	/*
	 * Queued behind a running thread, it may now run where it could not:
	 * an idle CPU halted with nothing it was allowed to take, and no
	 * enqueue will tell it.  Kick one now, not at the busy CPU's next tick.
	 */
	if (stay && t->queued)
		kick_idle(rq->cpu, mask);
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

/* ---- Listing threads (sched_dump_threads). */

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

void thread_dump(const struct thread *t)
{
	/* The running stint too: a thread that never switched out has run all along. */
	uint64_t runtime = t->runtime_tsc + (t->on_cpu ? rdtsc() - t->switched_in_tsc : 0);

	kprintf("# thread %d %s cpu=%d prio=%d/%d state=%s%s switches=%lu/%lu runtime_us=%lu\n",
	        t->id, t->name, t->cpu, t->prio, t->base_prio, state_name(t->state),
	        t->on_cpu ? " on-cpu" : "", t->nvcsw, t->nivcsw, tsc_to_ns(runtime) / 1000);
}

void thread_pool_dump(void)
{
	for (int i = 0; i < MAX_THREADS; i++)
		if (pool_busy[i])
			thread_dump(&thread_pool[i]);
}
