/*
 * Locks taken from interrupt handlers while the interrupted code holds or
 * is taking another of the same type: every registered LOCK_PROP_IRQ_SAFE
 * type, a nested KTAP result each (lock.irq_nesting.<type>).  The MCS
 * lock's per-CPU nodes are the case in point: mcs_spin_lock() claims a node
 * with interrupts left on, so a handler that takes an MCS lock meanwhile
 * must end up on a different node of the same CPU (kernel/lock/mcs.c says
 * why a plain read and store are enough); the queued spinlocks' per-CPU
 * nodes and the PV locks' per-CPU wait slots have the same problem.
 */
#include "lock_common.h"
#include "sched.h"

#define IRQ_TORTURE_MS 200

static struct {
	struct lt_lock task_lock, irq_lock; /* two instances of the type under test */
	uint64_t task_count, irq_count;     /* each written only under its lock */
	int task_inside, irq_inside;        /* exclusion probes */
	bool pending[MAX_CPUS];             /* a call is on its way to this CPU */
	bool holding[MAX_CPUS];             /* this CPU's task side holds task_lock */
} mi;

/* In interrupt context on the CPU the call was sent to. */
static void irq_side(void *arg)
{
	int cpu = (int)(uintptr_t)arg;
	struct lt_pcpu *pc = &lt.pc[cpu];

	lt_acquire(&mi.irq_lock);
	if (__atomic_fetch_add(&mi.irq_inside, 1, __ATOMIC_RELAXED))
		pc->fails++;
	mi.irq_count++;
	__atomic_fetch_sub(&mi.irq_inside, 1, __ATOMIC_RELAXED);
	lt_release(&mi.irq_lock);
	pc->x[0]++;
	if (mi.holding[cpu])
		pc->x[1]++; /* nested: the node the task holds must not be taken */
	__atomic_store_n(&mi.pending[cpu], false, __ATOMIC_RELEASE);
}

/*
 * Every CPU takes task_lock with interrupts on, and keeps one cross-CPU
 * call in flight to the next CPU, whose handler takes irq_lock: handlers
 * land while their CPU spins for, holds or has just released task_lock.
 */
static void task_side(struct lt_run *r, int cpu, struct lt_pcpu *pc)
{
	int next = (cpu + 1) % r->ncpus;

	while (!lt_over(r)) {
		if (!__atomic_load_n(&mi.pending[next], __ATOMIC_ACQUIRE)) {
			mi.pending[next] = true;
			on_cpu(next, irq_side, (void *)(uintptr_t)next, false);
		}
		preempt_disable();
		lt_acquire(&mi.task_lock);
		mi.holding[cpu] = true;
		if (__atomic_fetch_add(&mi.task_inside, 1, __ATOMIC_RELAXED))
			pc->fails++;
		mi.task_count++;
		for (int i = 0; i < 20; i++)
			lock_arch_cpu_relax(); /* room for a handler to land inside */
		__atomic_fetch_sub(&mi.task_inside, 1, __ATOMIC_RELAXED);
		mi.holding[cpu] = false;
		lt_release(&mi.task_lock);
		preempt_enable();
		pc->ops++;
	}
}

static bool irq_type(const struct lock_type *t)
{
	return (t->props & LOCK_PROP_IRQ_SAFE) && !lt_broken(t);
}

static void irq_one(struct lt_sub *s, const struct lock_type *t)
{
	int cpu;

	memset(&mi, 0, sizeof(mi));
	if (!lt_use(&mi.task_lock, t, 0) || !lt_use(&mi.irq_lock, t, 1)) {
		lt_sub_fail(s, t, "no instance");
		lt_sub_end(s, t, NULL);
		return;
	}
	lt_prepare(&lt, task_side, NULL, IRQ_TORTURE_MS);
	if (!lt_run_cpus(&lt, 0, LT_RUN_TIMEOUT_MS)) {
		lt_sub_fail(s, t, "the run did not complete");
		lt_sub_end(s, t, NULL);
		return;
	}
	/* Let the calls still in flight finish before counting them. */
	for_each_online_cpu(cpu)
		if (cpu < lt.ncpus &&
		    !spin_until(!__atomic_load_n(&mi.pending[cpu], __ATOMIC_ACQUIRE),
		                2000 * NSEC_PER_MSEC))
			lt_sub_fail(s, t, "a call to CPU %d never ran", cpu);

	uint64_t handled = LT_SUM(&lt, lt.ncpus, x[0]);
	uint64_t nested = LT_SUM(&lt, lt.ncpus, x[1]);
	uint64_t fails = LT_SUM(&lt, lt.ncpus, fails);
	kprintf("# %s: %lu task sections, %lu from interrupt handlers (%lu while their CPU held "
	        "the task lock) on %d CPUs\n",
	        t->name, mi.task_count, handled, nested, lt.ncpus);
	if (fails)
		lt_sub_fail(s, t, "%lu exclusion violations", fails);
	if (mi.task_count != LT_SUM(&lt, lt.ncpus, ops) || mi.irq_count != handled)
		lt_sub_fail(s, t, "lost updates: task %lu of %lu, handlers %lu of %lu",
		            mi.task_count, LT_SUM(&lt, lt.ncpus, ops), mi.irq_count, handled);
	if (!handled)
		lt_sub_fail(s, t, "no handler ran");
	if (t->is_locked && (t->is_locked(mi.task_lock.l) || t->is_locked(mi.irq_lock.l)))
		lt_sub_fail(s, t, "still locked after the run");
	lt_sub_end(s, t, NULL);
}

KTEST(lock, irq_nesting, .min_cpus = 2, .timeout_ms = 60000)
{
	const struct lock_type *t;
	struct lt_sub s;
	int n = 0;

	for_each_lock_type(t, pp) {
		n += irq_type(t);
	}
	lt_sub_begin(&s, n);
	for_each_lock_type(t, pp) {
		if (irq_type(t))
			irq_one(&s, t);
	}
}
