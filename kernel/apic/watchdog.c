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
 * A lockup or a host stall?  Under an emulator or hypervisor a vCPU the host
 * does not run for a while misses its ticks exactly as a locked-up CPU does;
 * a stale stamp alone cannot tell them apart, and on a loaded host no fixed
 * threshold is long enough.  An NMI can: a CPU looping with interrupts off
 * still takes it, a vCPU the host does not run takes nothing.  So a stale
 * CPU is first pinged by NMI, and its checkers follow it:
 *   - it ticks again (or goes idle) before answering usefully: the host did
 *     not run it; the stall is reported as a diagnostic and the run goes on;
 *   - it answers the NMI but still takes no tick for half a threshold after:
 *     it runs with interrupts off, a lockup: the bite below;
 *   - it answers nothing for NMI_WAIT_THRESHOLDS thresholds: it is not
 *     running at all (halted with NMIs blocked, or the host is gone): bite.
 * One suspect at a time; the checkers take turns on it through a try-lock,
 * so a checker that goes idle does not leave the suspect unfollowed.
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

/* How long a stale CPU may leave its NMI unanswered, in thresholds. */
#define NMI_WAIT_THRESHOLDS 5

static volatile bool armed;
static volatile int reporter = -1;
static uint64_t threshold_cycles, check_cycles;
static uint64_t threshold_ms;

/* The CPU under suspicion; written only by the holder of `checking`. */
static volatile int checking;
static struct {
	int cpu;           /* -1: none */
	uint64_t stamp;    /* its last tick when it was found stale */
	uint64_t pinged;   /* when the NMI was posted */
	unsigned done;     /* its nmi_done count the answer moves past */
	uint64_t answered; /* when the answer was first seen; 0: not yet */
} suspect = {.cpu = -1};
static uint64_t host_stalls;

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

static __noreturn void watchdog_bite(int stuck, uint64_t stalled, const char *how)
{
	int me = smp_processor_id(), cpu;
	char why[160];
	uint64_t off = 0;

	/* The stuck CPU may hold the console lock with interrupts off. */
	console_break_lock();
	kprintf("# watchdog: CPU %d (APIC id %u) has not ticked for %lu ms (threshold %lu ms) and "
	        "%s; CPU %d reporting\n",
	        stuck, cpus[stuck].apic_id, tsc_to_ns(stalled) / NSEC_PER_MSEC, threshold_ms, how,
	        me);
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

static void bite_once(int cpu, uint64_t stalled, const char *how)
{
	int expected = -1;
	if (__atomic_compare_exchange_n(&reporter, &expected, smp_processor_id(), false,
	                                __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		watchdog_bite(cpu, stalled, how);
}

/* One step of following the suspect (see the top of the file). */
static void follow_suspect(uint64_t now)
{
	int cpu = suspect.cpu;
	struct apic_cpu *ac = &apic_cpus[cpu];
	uint64_t last = __atomic_load_n(&ac->last_tick_tsc, __ATOMIC_ACQUIRE);
	char how[96];

	if ((int64_t)(last - suspect.stamp) > 0 ||
	    __atomic_load_n(&ac->wd_idle, __ATOMIC_ACQUIRE)) {
		uint64_t ms = tsc_to_ns(last - suspect.stamp) / NSEC_PER_MSEC;
		host_stalls++;
		kprintf(
		    "# watchdog: CPU %d went %lu ms without a tick and then ticked: the host did "
		    "not run it (a stall, not a lockup; %lu so far)\n",
		    cpu, ms, host_stalls);
		suspect.cpu = -1;
		return;
	}
	if (__atomic_load_n(&ac->nmi_done, __ATOMIC_ACQUIRE) != suspect.done) {
		if (!suspect.answered)
			suspect.answered = now;
		if ((int64_t)(now - suspect.answered) > (int64_t)(threshold_cycles / 2)) {
			snprintf(how, sizeof(how),
			         "answered an NMI %lu ms ago: it runs with interrupts off",
			         tsc_to_ns(now - suspect.answered) / NSEC_PER_MSEC);
			bite_once(cpu, now - suspect.stamp, how);
		}
		return;
	}
	if ((int64_t)(now - suspect.pinged) > (int64_t)(NMI_WAIT_THRESHOLDS * threshold_cycles)) {
		snprintf(how, sizeof(how), "has not answered an NMI for %lu ms",
		         tsc_to_ns(now - suspect.pinged) / NSEC_PER_MSEC);
		bite_once(cpu, now - suspect.stamp, how);
	}
}

void watchdog_tick(uint64_t now)
{
	struct apic_cpu *me = this_apic_cpu();
	int self = smp_processor_id(), cpu;

	if (!armed || smp_stopping || (int64_t)(now - me->last_check_tsc) < (int64_t)check_cycles)
		return;
	me->last_check_tsc = now;
	if (reporter >= 0 || __atomic_exchange_n(&checking, 1, __ATOMIC_ACQUIRE))
		return; /* another CPU is checking or reporting right now */
	if (suspect.cpu >= 0) {
		follow_suspect(now);
	} else {
		for_each_online_cpu(cpu) {
			if (cpu == self ||
			    __atomic_load_n(&apic_cpus[cpu].wd_idle, __ATOMIC_ACQUIRE))
				continue;
			uint64_t last =
			    __atomic_load_n(&apic_cpus[cpu].last_tick_tsc, __ATOMIC_ACQUIRE);
			if ((int64_t)(now - last) <= (int64_t)threshold_cycles)
				continue;
			suspect.stamp = last;
			suspect.pinged = now;
			suspect.answered = 0;
			suspect.done = nmi_ping_post(cpu);
			suspect.cpu = cpu;
			break;
		}
	}
	__atomic_store_n(&checking, 0, __ATOMIC_RELEASE);
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
