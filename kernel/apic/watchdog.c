/*
 * The lockup watchdog.  Every CPU's timer tick stamps the TSC into its own
 * per-CPU block; every CPU's tick, a few times a second, looks at all the
 * others.  A CPU whose stamp is older than the threshold (WATCHDOG_THRESHOLD_MS,
 * scaled by vCPU overcommit) is not
 * taking interrupts: a deadlock, or a loop with interrupts off.  The first
 * CPU to notice makes every CPU print where it is (by NMI, which still gets
 * through), names the stuck CPU and its function, and bails out.
 *
 * Checking from every CPU, rather than from the boot CPU alone, means a
 * stuck boot CPU is caught too.
 *
 * Idle CPUs.  Under the scheduler an idle CPU halts with no timer armed
 * (kernel/sched): no tick, no stamp.  Its idle loop says so with
 * watchdog_idle_enter() right before `sti; hlt`; such a CPU is not
 * checked until its next interrupt (or the idle loop) calls
 * watchdog_idle_exit(), which stamps it again.  A CPU stuck with
 * interrupts off cannot be in that state: it entered it with `sti; hlt`,
 * and the first interrupt ends it before its handler runs.  Busy CPUs
 * keep a TICK_HZ tick and check the others every WATCHDOG_CHECK_MS of it;
 * the idle boot CPU keeps a slow timer for the check.
 */
#include "apic.h"
#include "apic/internal.h"
#include "cmdline.h"
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "smp.h"
#include "symbols.h"
#include "time.h"

static volatile bool armed;
static volatile int reporter = -1;
static uint64_t threshold_cycles, check_cycles;
static uint64_t threshold_ms;

void watchdog_touch(void)
{
	this_apic_cpu()->last_tick_tsc = rdtsc();
}

void watchdog_idle_enter(void)
{
	struct apic_cpu *ac = this_apic_cpu();

	ac->last_tick_tsc = rdtsc();
	__atomic_store_n(&ac->wd_idle, true, __ATOMIC_RELEASE);
}

void watchdog_idle_exit(void)
{
	struct apic_cpu *ac = this_apic_cpu();

	/* Stamp first: a checker that sees the flag down must see a fresh stamp. */
	ac->last_tick_tsc = rdtsc();
	__atomic_store_n(&ac->wd_idle, false, __ATOMIC_RELEASE);
}

static __noreturn void watchdog_bite(int stuck, uint64_t stalled)
{
	int me = smp_processor_id(), cpu;
	char why[160];
	uint64_t off = 0;

	/* The stuck CPU may hold the console lock with interrupts off. */
	console_break_lock();
	kprintf("# watchdog: CPU %d (APIC id %u) has not ticked for %lu ms (threshold %lu ms); "
	        "CPU %d reporting\n",
	        stuck, cpus[stuck].apic_id, tsc_to_ns(stalled) / NSEC_PER_MSEC, threshold_ms, me);
	/* The stuck CPU first: its location is the point of all this. */
	arch_dump_cpu_stack(stuck);
	for_each_online_cpu(cpu)
		if (cpu != stuck)
			arch_dump_cpu_stack(cpu);
	const char *fn = ksym_lookup(apic_cpus[stuck].nmi_rip, &off);
	if (fn)
		snprintf(why, sizeof(why), "watchdog: CPU %d stuck in %s+%#lx", stuck, fn, off);
	else
		snprintf(why, sizeof(why), "watchdog: CPU %d stuck", stuck);
	smp_stop_others();
	ktest_bail_out(why);
}

void watchdog_tick(uint64_t now)
{
	struct apic_cpu *me = this_apic_cpu();
	int self = smp_processor_id(), cpu;

	if (!armed || smp_stopping || (int64_t)(now - me->last_check_tsc) < (int64_t)check_cycles)
		return;
	me->last_check_tsc = now;
	for_each_online_cpu(cpu) {
		if (cpu == self || __atomic_load_n(&apic_cpus[cpu].wd_idle, __ATOMIC_ACQUIRE))
			continue;
		uint64_t last = __atomic_load_n(&apic_cpus[cpu].last_tick_tsc, __ATOMIC_ACQUIRE);
		int64_t stalled = (int64_t)(now - last);
		if (stalled <= (int64_t)threshold_cycles)
			continue;
		int expected = -1;
		if (__atomic_compare_exchange_n(&reporter, &expected, self, false, __ATOMIC_ACQ_REL,
		                                __ATOMIC_RELAXED))
			watchdog_bite(cpu, (uint64_t)stalled);
		return; /* someone else is already reporting */
	}
}

void watchdog_init(void)
{
	int cpu;
	uint64_t now = rdtsc();

	/*
	 * Under an emulator or hypervisor with more vCPUs than host CPUs, a
	 * healthy vCPU can go unscheduled for seconds: scale the threshold by
	 * the overcommit the runner reported (host_cpus=), or a busy host would
	 * look like a deadlock.
	 */
	int overcommit = 1;
	if (config.host_cpus > 0 && num_online_cpus() > config.host_cpus)
		overcommit = (num_online_cpus() + config.host_cpus - 1) / config.host_cpus;
	threshold_ms = WATCHDOG_THRESHOLD_MS * (uint64_t)overcommit;
	threshold_cycles = ns_to_tsc(threshold_ms * NSEC_PER_MSEC);
	check_cycles = ns_to_tsc(WATCHDOG_CHECK_MS * NSEC_PER_MSEC);
	for_each_online_cpu(cpu) {
		apic_cpus[cpu].last_tick_tsc = now;
		apic_cpus[cpu].last_check_tsc = now;
	}
	armed = apic_mode != APIC_MODE_NONE && lapic_timer_hz;
	kprintf("# watchdog: %s, threshold %lu ms, checked every %d ms from each busy CPU's tick; "
	        "idle CPUs exempt\n",
	        armed ? "on" : "off (no LAPIC timer)", threshold_ms, WATCHDOG_CHECK_MS);
	/* From here on the boot CPU takes its tick (and IPIs) like the others. */
	local_irq_enable();
}
