/*
 * Locks taken from interrupt handlers while the interrupted code holds or
 * is taking another.  The MCS lock's per-CPU nodes are the case in point:
 * mcs_spin_lock() claims a node with interrupts left on, so a handler that
 * takes an MCS lock meanwhile must end up on a different node of the same
 * CPU (kernel/lock/mcs.c says why a plain read and store are enough).
 */
#include "lock_common.h"
#include "sched.h"

#define IRQ_TORTURE_MS 300
#define IRQ_RUN_TIMEOUT_MS 5000

static struct {
	struct mcs_lock task_lock, irq_lock;
	uint64_t task_count, irq_count; /* each written only under its lock */
	int task_inside, irq_inside;    /* exclusion probes */
	bool pending[MAX_CPUS];         /* a call is on its way to this CPU */
	bool holding[MAX_CPUS];         /* this CPU's task side holds task_lock */
} mi;

/* In interrupt context on the CPU the call was sent to. */
static void irq_side(void *arg)
{
	int cpu = (int)(uintptr_t)arg;
	struct lt_pcpu *pc = &lt.pc[cpu];

	mcs_spin_lock(&mi.irq_lock);
	if (__atomic_fetch_add(&mi.irq_inside, 1, __ATOMIC_RELAXED))
		pc->fails++;
	mi.irq_count++;
	__atomic_fetch_sub(&mi.irq_inside, 1, __ATOMIC_RELAXED);
	mcs_spin_unlock(&mi.irq_lock);
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
		mcs_spin_lock(&mi.task_lock);
		mi.holding[cpu] = true;
		if (__atomic_fetch_add(&mi.task_inside, 1, __ATOMIC_RELAXED))
			pc->fails++;
		mi.task_count++;
		for (int i = 0; i < 20; i++)
			lock_arch_cpu_relax(); /* room for a handler to land inside */
		__atomic_fetch_sub(&mi.task_inside, 1, __ATOMIC_RELAXED);
		mi.holding[cpu] = false;
		mcs_spin_unlock(&mi.task_lock);
		preempt_enable();
		pc->ops++;
	}
}

KTEST(lock, mcs_nodes_in_interrupts, .min_cpus = 2, .timeout_ms = 10000)
{
	memset(&mi, 0, sizeof(mi));
	mcs_lock_init(&mi.task_lock);
	mcs_lock_init(&mi.irq_lock);
	lt_prepare(&lt, task_side, NULL, IRQ_TORTURE_MS);
	if (!lt_run_cpus(&lt, 0, IRQ_RUN_TIMEOUT_MS))
		return;
	/* Let the calls still in flight finish before counting them. */
	int cpu;
	for_each_online_cpu(cpu)
		if (cpu < lt.ncpus)
			KT_EXPECT(spin_until(!__atomic_load_n(&mi.pending[cpu], __ATOMIC_ACQUIRE),
			                     2000 * NSEC_PER_MSEC));

	uint64_t handled = LT_SUM(&lt, lt.ncpus, x[0]);
	uint64_t nested = LT_SUM(&lt, lt.ncpus, x[1]);
	kprintf("# mcs: %lu task sections, %lu from interrupt handlers (%lu while their CPU held "
	        "the task lock) on %d CPUs\n",
	        mi.task_count, handled, nested, lt.ncpus);
	KT_EXPECT_EQ(LT_SUM(&lt, lt.ncpus, fails), 0);
	KT_EXPECT_EQ(mi.task_count, LT_SUM(&lt, lt.ncpus, ops));
	KT_EXPECT_EQ(mi.irq_count, handled);
	KT_EXPECT(handled > 0);
	KT_EXPECT(!mcs_is_locked(&mi.task_lock) && !mcs_is_locked(&mi.irq_lock));
}
