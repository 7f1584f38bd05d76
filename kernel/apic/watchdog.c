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
 */
#include "apic.h"
#include "cmdline.h"
#include "apic/internal.h"
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "smp.h"
#include "symbols.h"
#include "time.h"

/* Each CPU looks at the others every this many of its ticks (0.5 s at 100 Hz). */
#define WATCHDOG_CHECK_TICKS 50

static volatile bool armed;
static volatile int reporter = -1;
static uint64_t threshold_cycles;
static uint64_t threshold_ms;

void watchdog_touch(void)
{
	this_apic_cpu()->last_tick_tsc = rdtsc();
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

	if (!armed || smp_stopping || ++me->tick_div < WATCHDOG_CHECK_TICKS)
		return;
	me->tick_div = 0;
	for_each_online_cpu(cpu) {
		if (cpu == self)
			continue;
		uint64_t last = __atomic_load_n(&apic_cpus[cpu].last_tick_tsc, __ATOMIC_RELAXED);
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
	for_each_online_cpu(cpu)
		apic_cpus[cpu].last_tick_tsc = now;
	armed = apic_mode != APIC_MODE_NONE && lapic_timer_hz;
	kprintf("# watchdog: %s, threshold %lu ms, checked from every CPU's %d Hz tick\n",
	        armed ? "on" : "off (no LAPIC timer)", threshold_ms, TICK_HZ);
	/* From here on the boot CPU takes its tick (and IPIs) like the others. */
	local_irq_enable();
}
