/*
 * State shared by the files of kernel/apic/ and nobody else: the per-CPU
 * block that struct cpu's `arch` points at.
 */
#ifndef LOCKLAB_APIC_INTERNAL_H
#define LOCKLAB_APIC_INTERNAL_H

#include "cpu.h"
#include "types.h"

struct call_req;

/* NMI requests (bits in apic_cpu.nmi_request). */
#define NMI_REQ_DUMP 0x1
#define NMI_REQ_STOP 0x2
#define NMI_REQ_PING 0x4

/* Post a ping NMI without waiting: it is answered when cpu's nmi_done moves past the result. */
unsigned nmi_ping_post(int cpu);

/*
 * Grouped by writer, one cache line each, so a remote CPU queueing work
 * does not disturb the timer fields this CPU writes on every tick.
 */
struct apic_cpu {
	/* Written by this CPU. */
	volatile uint64_t timer_fired;
	volatile uint64_t timer_last_tsc;
	volatile uint64_t last_tick_tsc; /* the watchdog's view of this CPU */
	volatile uint64_t test_ipis;     /* VEC_TEST interrupts taken */
	volatile uint64_t kicks;
	volatile uint64_t nmi_count;
	volatile uint64_t nmi_rip; /* where the last dump request found it */
	uint64_t last_check_tsc;   /* when this CPU last looked at the others */
	uint32_t timer_lvt;        /* last written to the timer's LVT (0: not yet) */
	uint32_t timer_div;        /* last divide code written, plus 1 (0: not yet) */
	volatile bool wd_idle;     /* halted in the idle loop: exempt from the watchdog */

	/* Written by other CPUs. */
	struct call_req *volatile call_head __cacheline_aligned;
	volatile unsigned nmi_request;
	volatile unsigned nmi_done; /* bumped after each handled dump/ping */

	/* Work run by the idle loop in thread context (smp_launch). */
	void (*volatile work_fn)(void *) __cacheline_aligned;
	void *volatile work_arg;
	volatile int work_busy;
} __cacheline_aligned;

extern struct apic_cpu apic_cpus[MAX_CPUS];

static inline struct apic_cpu *this_apic_cpu(void)
{
	return &apic_cpus[smp_processor_id()];
}

/* Set-up of the IPI handlers (ipi.c), run once on the boot CPU. */
void ipi_init(void);
/* Call-queue slots for CPUs 0..n-1, once bring-up is over. */
void ipi_alloc_slots(int n);
/* An AP's idle loop, interrupts off: run launched work if any (true if it did). */
bool smp_idle_work(void);
/* kernel/sched: wake the launch thread of `cpu` (false before the scheduler runs). */
bool sched_launch_notify(int cpu);
/* Called from every timer interrupt with the current TSC (watchdog.c). */
void watchdog_tick(uint64_t now);
/*
 * Measure the TSC rate and the LAPIC timer (counts per TSC cycle, 32.32)
 * against the PIT or the PM timer; `source` names the one used.
 */
bool tsc_calibrate(const char **source, uint64_t *tsc_rate, uint64_t *lapic_fp);
uint64_t lapic_calibrate_by_tsc(unsigned ms);
/* True once smp_stop_others() has begun: stay quiet and stop. */
extern volatile int smp_stopping;

#endif
