/*
 * Time: the TSC as the clock (frequency from the hypervisor, from CPUID or
 * calibrated against the PIT / ACPI PM timer), delays, and the local APIC timer in periodic,
 * one-shot and TSC-deadline modes.  Every duration the kernel reports goes
 * through tsc_to_ns().
 */
#ifndef LOCKLAB_TIME_H
#define LOCKLAB_TIME_H

#include "types.h"
#include "x86.h"

#define NSEC_PER_USEC ((uint64_t)1000)
#define NSEC_PER_MSEC ((uint64_t)1000000)
#define NSEC_PER_SEC ((uint64_t)1000000000)

/* The per-CPU tick that drives the watchdog heartbeat. */
#define TICK_HZ 100

extern uint64_t tsc_hz;         /* 0 until time_init() */
extern uint64_t lapic_timer_hz; /* at divide-by-1 */
extern bool tsc_invariant;
extern bool tsc_deadline_supported;
/*
 * Where tsc_hz came from: "kvmclock", "hypervisor-cpuid", "cpuid",
 * "calibrated" or "guessed" (then tsc_guessed: every ns figure is wrong).
 */
extern const char *tsc_source;
extern bool tsc_guessed;

void time_init(void);
/* Start this CPU's periodic tick (the boot CPU's is started by time_init). */
void timer_cpu_init(void);

/* Before time_init these assume a fast (4 GHz) TSC, so delays err long. */
uint64_t tsc_to_ns(uint64_t cycles);
uint64_t ns_to_tsc(uint64_t ns);
void ndelay(uint64_t ns);
void udelay(uint64_t us);
void mdelay(uint64_t ms);
/* Nanoseconds since time_init, from the TSC. */
uint64_t arch_now_ns(void);

/*
 * Spin until `cond` holds or `timeout_ns` passes; true if `cond` held.
 * The condition is tested once more at the deadline, so a late success counts.
 */
#define spin_until(cond, timeout_ns)                                   \
	({                                                             \
		uint64_t __deadline = rdtsc() + ns_to_tsc(timeout_ns); \
		bool __ok;                                             \
		for (;;) {                                             \
			if (cond) {                                    \
				__ok = true;                           \
				break;                                 \
			}                                              \
			if ((int64_t)(rdtsc() - __deadline) >= 0) {    \
				__ok = (cond);                         \
				break;                                 \
			}                                              \
			cpu_relax();                                   \
		}                                                      \
		__ok;                                                  \
	})

/*
 * This CPU's LAPIC timer.  Every expiry counts as a tick (heartbeat) and
 * runs the tick hook.  The one-shot and deadline modes replace the periodic
 * tick until timer_cpu_init() or lapic_timer_periodic() restores it.
 */
void lapic_timer_periodic(unsigned hz);
void lapic_timer_oneshot(uint64_t ns);
/* Fire when the TSC reaches `tsc`; false (nothing armed) without TSC-deadline support. */
bool lapic_timer_deadline(uint64_t tsc);
void lapic_timer_stop(void);
/* This CPU's timer is in periodic mode (the TICK_HZ tick of timer_cpu_init). */
bool lapic_timer_is_periodic(void);
/* How many times CPU `cpu`'s timer fired, and the TSC at the last expiry. */
uint64_t lapic_timer_fired(int cpu, uint64_t *last_tsc);

struct trapframe;
/* Called on every timer interrupt after the EOI (the scheduler's entry point). */
void timer_set_tick_hook(void (*fn)(struct trapframe *tf));

#endif
