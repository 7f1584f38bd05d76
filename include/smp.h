/*
 * The other CPUs: bring-up, the online mask, IPIs, cross-CPU calls, work
 * launched on idle CPUs, stopping and dumping CPUs, and the watchdog.
 */
#ifndef LOCKLAB_SMP_H
#define LOCKLAB_SMP_H

#include "cpu.h"
#include "types.h"

/* ---- CPU masks: a bitmap of MAX_CPUS dense CPU ids. */

#define CPUMASK_WORDS (MAX_CPUS / 64)

typedef struct {
	uint64_t bits[CPUMASK_WORDS];
} cpumask_t;

extern cpumask_t cpu_online_mask;

static inline void cpumask_clear(cpumask_t *m)
{
	for (int i = 0; i < CPUMASK_WORDS; i++)
		m->bits[i] = 0;
}

/* Atomic, so CPUs may set their own bits concurrently. */
static inline void cpumask_set_cpu(int cpu, cpumask_t *m)
{
	__atomic_fetch_or(&m->bits[cpu / 64], 1ull << (cpu % 64), __ATOMIC_RELEASE);
}

static inline void cpumask_clear_cpu(int cpu, cpumask_t *m)
{
	__atomic_fetch_and(&m->bits[cpu / 64], ~(1ull << (cpu % 64)), __ATOMIC_RELEASE);
}

static inline bool cpumask_test_cpu(int cpu, const cpumask_t *m)
{
	return (__atomic_load_n(&m->bits[cpu / 64], __ATOMIC_ACQUIRE) >> (cpu % 64)) & 1;
}

/* Without -mpopcnt the builtin would call libgcc, which a freestanding kernel lacks. */
static inline int popcount64(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (int)((x * 0x0101010101010101ull) >> 56);
}

static inline int cpumask_weight(const cpumask_t *m)
{
	int n = 0;
	for (int i = 0; i < CPUMASK_WORDS; i++)
		n += popcount64(__atomic_load_n(&m->bits[i], __ATOMIC_RELAXED));
	return n;
}

/* The first set CPU after `cpu` (-1 to start), or MAX_CPUS. */
static inline int cpumask_next(int cpu, const cpumask_t *m)
{
	for (cpu++; cpu < MAX_CPUS; cpu = (cpu | 63) + 1) {
		uint64_t w = __atomic_load_n(&m->bits[cpu / 64], __ATOMIC_RELAXED) >> (cpu % 64);
		if (w)
			return cpu + __builtin_ctzll(w);
	}
	return MAX_CPUS;
}

#define for_each_cpu(cpu, mask)                                  \
	for ((cpu) = cpumask_next(-1, (mask)); (cpu) < MAX_CPUS; \
	     (cpu) = cpumask_next((cpu), (mask)))
#define for_each_online_cpu(cpu) for_each_cpu(cpu, &cpu_online_mask)

static inline bool cpu_online(int cpu)
{
	return cpu >= 0 && cpu < MAX_CPUS && cpumask_test_cpu(cpu, &cpu_online_mask);
}

/* ---- Bring-up (kmain calls these in order; APs enter at ap_main). */

void smp_boot_aps(void);
__noreturn void ap_main(int id);
/* The dense id of the CPU with this APIC ID, or -1. */
int cpu_from_apic_id(uint32_t apic_id);

/* ---- IPIs. */

void send_ipi(int cpu, int vector);
void send_ipi_mask(const cpumask_t *mask, int vector);
void send_ipi_allbutself(int vector);
void send_nmi(int cpu);
/* Wake `cpu` (from hlt) with VEC_KICK, whose handler only acknowledges it. */
void arch_kick_cpu(int cpu);
/* VEC_TEST interrupts CPU `cpu` has taken (for tests of IPI delivery). */
uint64_t smp_test_ipis(int cpu);
/* NMI `cpu` and wait (bounded) for its handler to answer. */
bool smp_nmi_ping(int cpu, uint64_t timeout_ms);

/*
 * Run fn(arg) on `cpu` in interrupt context (interrupts off), through its
 * call queue and a VEC_CALL_FUNC IPI.  With `wait`, return after it ran.
 * On `cpu` itself it runs at once.  Returns 0, or -1 if `cpu` is offline.
 * A call that does not run within CALL_TIMEOUT_MS is a stuck CPU: panic.
 */
int on_cpu(int cpu, void (*fn)(void *), void *arg, bool wait);
/* The same on every CPU in `mask` (this one included if set), then on all. */
int on_cpu_mask(const cpumask_t *mask, void (*fn)(void *), void *arg, bool wait);
int on_each_cpu(void (*fn)(void *), void *arg, bool wait);
#define CALL_TIMEOUT_MS 5000

/*
 * Run fn(arg) on an idle AP in thread context (interrupts on), where it
 * may spin, wait for other CPUs and take interrupts.  Returns 0, or -1 if
 * `cpu` is offline, the boot CPU, or still busy with earlier work.
 */
int smp_launch(int cpu, void (*fn)(void *), void *arg);
/* Wait (bounded) for work launched on `cpu` to return; false on timeout. */
bool smp_wait_launched(int cpu, uint64_t timeout_ms);
/*
 * fn(arg) on every online CPU at once: launched on the APs, called here,
 * then waited for.  Returns how many CPUs did not finish in `timeout_ms`.
 */
int smp_run_all(void (*fn)(void *), void *arg, uint64_t timeout_ms);

/* ---- Stopping and dumping (panic, watchdog). */

/* Make `cpu` print its RIP and backtrace (by NMI); waits, bounded, for it. */
void arch_dump_cpu_stack(int cpu);
/* NMI every other online CPU into a quiet halt.  Safe before SMP is up. */
void smp_stop_others(void);

/* ---- Watchdog: a CPU whose tick stops for this long is reported as stuck. */

#define WATCHDOG_THRESHOLD_MS 2000
/* How often each CPU with a tick looks at the others. */
#define WATCHDOG_CHECK_MS 500
void watchdog_init(void);
/* A CPU that keeps interrupts off on purpose for long says so here. */
void watchdog_touch(void);
/*
 * The idle loop, interrupts off, right before `sti; hlt` with no tick
 * armed: the watchdog leaves this CPU alone until watchdog_idle_exit()
 * (called by the first interrupt, or the idle loop), which restarts its
 * clock.
 */
void watchdog_idle_enter(void);
void watchdog_idle_exit(void);

#endif
