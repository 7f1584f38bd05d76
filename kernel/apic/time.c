/*
 * The TSC as the kernel's clock and the local APIC timer as its tick.
 *
 * Where the TSC frequency comes from, in order:
 *  1. under KVM, the hypervisor: its frequency leaf 0x40000010 where
 *     offered, else the kvmclock scale (kvmclock.c).  The host defines the
 *     guest's TSC, so this is taken as it is, with no calibration: under a
 *     slow or loaded hypervisor a calibration may not even complete.  The
 *     LAPIC timer is then timed against the TSC (or taken from the leaf).
 *  2. CPUID (leaf 0x15/0x16, or another hypervisor's 0x40000010) when the
 *     CPU reports it, cross-checked against the PIT or the ACPI PM timer
 *     (calibrate.c), which also time the LAPIC timer; about 15 ms.
 *  3. The calibration alone.
 *  4. A guess (TSC_GUESS_HZ).  Never silent: tsc_guessed is set, the time
 *     line says GUESSED, smp.time_source fails and every time figure of the
 *     run carries tsc=guessed (figure_tags in steal.c).
 */
#include "time.h"
#include "acpi.h"
#include "apic.h"
#include "apic/internal.h"
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "kvm.h"
#include "trap.h"
#include "x86.h"

#define CALIBRATION_MS 5
/* CPUID's frequency is trusted when it agrees with the measurement to 1/this. */
#define CPUID_AGREEMENT 100
#define TSC_GUESS_HZ 4000000000ull
#define TSC_NS_SHIFT 32
#define NS_TSC_SHIFT 24

uint64_t tsc_hz;
uint64_t lapic_timer_hz;
bool tsc_invariant;
bool tsc_deadline_supported;
bool tsc_guessed;
const char *tsc_source = "none";
static uint64_t tsc_boot;
/* ns = tsc * ns_mult >> 32, tsc = ns * tsc_mult >> 24; preset for TSC_GUESS_HZ. */
static uint64_t ns_mult = (NSEC_PER_SEC << TSC_NS_SHIFT) / TSC_GUESS_HZ;
static uint64_t tsc_mult = (TSC_GUESS_HZ << NS_TSC_SHIFT) / NSEC_PER_SEC;
static uint64_t lapic_mult; /* LAPIC counts = ns * lapic_mult >> 24 */
static void (*tick_hook)(struct trapframe *tf);

static inline uint64_t mul_shift(uint64_t a, uint64_t mult, unsigned shift)
{
	return (uint64_t)(((unsigned __int128)a * mult) >> shift);
}

uint64_t tsc_to_ns(uint64_t cycles)
{
	return mul_shift(cycles, ns_mult, TSC_NS_SHIFT);
}

uint64_t ns_to_tsc(uint64_t ns)
{
	return mul_shift(ns, tsc_mult, NS_TSC_SHIFT);
}

uint64_t arch_now_ns(void)
{
	return tsc_to_ns(rdtsc() - tsc_boot);
}

void ndelay(uint64_t ns)
{
	uint64_t start = rdtsc(), cycles = ns_to_tsc(ns);
	while (rdtsc() - start < cycles)
		cpu_relax();
}

void udelay(uint64_t us)
{
	ndelay(us * NSEC_PER_USEC);
}

void mdelay(uint64_t ms)
{
	ndelay(ms * NSEC_PER_MSEC);
}

/* The frequency the CPU (or hypervisor) reports, 0 if none; `src` says which. */
static uint64_t cpuid_tsc_hz(const char **src)
{
	uint32_t r[4];

	cpuid(0, 0, r);
	uint32_t max = r[0];
	if (max >= 0x15) {
		cpuid(0x15, 0, r);
		if (r[0] && r[1] && r[2]) {
			*src = "CPUID 0x15";
			return (uint64_t)r[2] * r[1] / r[0];
		}
	}
	if (max >= 0x16) {
		cpuid(0x16, 0, r);
		if (r[0] & 0xffff) {
			*src = "CPUID 0x16 base frequency";
			return (uint64_t)(r[0] & 0xffff) * 1000000;
		}
	}
	cpuid(1, 0, r);
	if (r[2] & (1u << 31)) { /* running under a hypervisor */
		cpuid(0x40000000, 0, r);
		if (r[0] >= 0x40000010 && r[0] < 0x40000100) {
			cpuid(0x40000010, 0, r);
			if (r[0]) {
				*src = "hypervisor CPUID 0x40000010";
				return (uint64_t)r[0] * 1000;
			}
		}
	}
	return 0;
}

static void print_mhz(char *buf, size_t size, uint64_t hz)
{
	snprintf(buf, size, "%lu.%03lu MHz", hz / 1000000, (hz % 1000000) / 1000);
}

static void timer_handler(struct trapframe *tf)
{
	struct apic_cpu *ac = this_apic_cpu();
	uint64_t now = rdtsc();

	ac->timer_fired++;
	ac->timer_last_tsc = now;
	ac->last_tick_tsc = now;
	this_cpu()->heartbeat++;
	lapic_eoi();
	if (tick_hook)
		tick_hook(tf);
	watchdog_tick(now);
}

void timer_set_tick_hook(void (*fn)(struct trapframe *tf))
{
	tick_hook = fn;
}

uint64_t lapic_timer_fired(int cpu, uint64_t *last_tsc)
{
	if (last_tsc)
		*last_tsc = apic_cpus[cpu].timer_last_tsc;
	return apic_cpus[cpu].timer_fired;
}

/* Divide-configuration encodings for 1, 2, 4 ... 128. */
static const uint8_t div_code[8] = {0xb, 0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xa};

/*
 * Program an initial count for `counts` divide-by-1 ticks, picking the
 * divider that fits.  The LVT and divider are rewritten only when they
 * change: a one-shot scheduler re-arms on every event, and under emulation
 * each APIC register access is an exit that serialises the vCPUs.
 */
static void timer_program(uint32_t lvt, uint64_t counts)
{
	unsigned shift = 0;
	while ((counts >> shift) > 0xffffffffull && shift < 7)
		shift++;
	uint64_t init = counts >> shift;
	if (init == 0)
		init = 1;
	if (init > 0xffffffffull)
		init = 0xffffffffull;
	unsigned long flags = local_irq_save();
	struct apic_cpu *ac = this_apic_cpu();
	if (ac->timer_lvt != lvt) {
		apic_write(APIC_LVT_TIMER, lvt);
		ac->timer_lvt = lvt;
	}
	if (ac->timer_div != div_code[shift] + 1u) {
		apic_write(APIC_TIMER_DIV, div_code[shift]);
		ac->timer_div = div_code[shift] + 1u;
	}
	apic_write(APIC_TIMER_INIT, (uint32_t)init);
	local_irq_restore(flags);
}

bool lapic_timer_is_periodic(void)
{
	return this_apic_cpu()->timer_lvt & APIC_LVT_TIMER_PERIODIC;
}

void lapic_timer_periodic(unsigned hz)
{
	if (apic_mode == APIC_MODE_NONE || !lapic_timer_hz || !hz)
		return;
	if (tsc_deadline_supported)
		wrmsr(MSR_TSC_DEADLINE, 0);
	timer_program(APIC_LVT_TIMER_PERIODIC | VEC_TIMER, lapic_timer_hz / hz);
}

void lapic_timer_oneshot(uint64_t ns)
{
	if (apic_mode == APIC_MODE_NONE || !lapic_timer_hz)
		return;
	if (tsc_deadline_supported)
		wrmsr(MSR_TSC_DEADLINE, 0);
	timer_program(VEC_TIMER, mul_shift(ns, lapic_mult, NS_TSC_SHIFT));
}

bool lapic_timer_deadline(uint64_t tsc)
{
	if (apic_mode == APIC_MODE_NONE || !tsc_deadline_supported)
		return false;
	apic_write(APIC_TIMER_INIT, 0);
	apic_write(APIC_LVT_TIMER, APIC_LVT_TIMER_DEADLINE | VEC_TIMER);
	this_apic_cpu()->timer_lvt = APIC_LVT_TIMER_DEADLINE | VEC_TIMER;
	/* The SDM asks for a fence between the LVT write and the deadline MSR (xAPIC MMIO). */
	__asm__ volatile("mfence" ::: "memory");
	wrmsr(MSR_TSC_DEADLINE, tsc ? tsc : 1);
	return true;
}

void lapic_timer_stop(void)
{
	if (apic_mode == APIC_MODE_NONE)
		return;
	apic_write(APIC_LVT_TIMER, APIC_LVT_MASKED | VEC_TIMER);
	apic_write(APIC_TIMER_INIT, 0);
	this_apic_cpu()->timer_lvt = APIC_LVT_MASKED | VEC_TIMER;
	if (tsc_deadline_supported)
		wrmsr(MSR_TSC_DEADLINE, 0);
}

void timer_cpu_init(void)
{
	this_apic_cpu()->last_tick_tsc = rdtsc();
	lapic_timer_periodic(TICK_HZ);
}

static void set_tsc_hz(uint64_t hz)
{
	tsc_hz = hz;
	ns_mult = (NSEC_PER_SEC << TSC_NS_SHIFT) / hz;
	tsc_mult = (hz << NS_TSC_SHIFT) / NSEC_PER_SEC;
}

/*
 * Under KVM: the TSC rate the hypervisor states, 0 if it states none; the
 * LAPIC timer's rate too when the leaf gives it (else *lapic_hz stays 0).
 */
static uint64_t hypervisor_tsc_hz(const char **src, const char **source, uint64_t *lapic_hz)
{
	uint32_t r[4];
	uint64_t hz;

	if (!kvm_detected())
		return 0;
	cpuid(0x40000000, 0, r);
	if (r[0] >= 0x40000010 && r[0] < 0x40000100) {
		cpuid(0x40000010, 0, r);
		if (r[0]) {
			*src = "the hypervisor's CPUID 0x40000010";
			*source = "hypervisor-cpuid";
			*lapic_hz = (uint64_t)r[1] * 1000;
			return (uint64_t)r[0] * 1000;
		}
	}
	hz = kvmclock_tsc_hz();
	if (hz) {
		*src = "kvmclock (the pvclock scale)";
		*source = "kvmclock";
	}
	return hz;
}

void time_init(void)
{
	const char *cpuid_src = NULL, *ref = NULL, *hv_src = NULL;
	uint64_t from_cpuid = 0, measured = 0, hv_lapic_hz = 0;
	uint64_t from_hv = hypervisor_tsc_hz(&hv_src, &tsc_source, &hv_lapic_hz);
	uint32_t r[4];
	char mhz[32], lmhz[32];

	tsc_boot = rdtsc();
	cpuid(0x80000000, 0, r);
	if (r[0] >= 0x80000007) {
		cpuid(0x80000007, 0, r);
		tsc_invariant = r[3] & (1u << 8);
	}
	cpuid(1, 0, r);
	tsc_deadline_supported = (r[2] & (1u << 24)) && apic_mode != APIC_MODE_NONE;

	uint64_t lapic_fp = 0;
	char how[160];
	if (!from_hv) {
		from_cpuid = cpuid_tsc_hz(&cpuid_src);
		if (!tsc_calibrate(&ref, &measured, &lapic_fp))
			measured = 0;
	}
	if (from_hv) {
		set_tsc_hz(from_hv);
		snprintf(how, sizeof(how), "from %s", hv_src);
		/* LAPIC counts per TSC cycle, 32.32, from the leaf's bus rate. */
		if (hv_lapic_hz && hv_lapic_hz < (1ull << 32))
			lapic_fp = (hv_lapic_hz << 32) / from_hv;
	} else if (from_cpuid && (!measured || (from_cpuid > measured ? from_cpuid - measured
	                                                              : measured - from_cpuid) <
	                                           measured / CPUID_AGREEMENT)) {
		set_tsc_hz(from_cpuid);
		tsc_source = "cpuid";
		snprintf(how, sizeof(how), "from %s%s%s", cpuid_src,
		         measured ? ", agrees with " : "", measured ? ref : "");
	} else if (measured) {
		set_tsc_hz(measured);
		tsc_source = "calibrated";
		print_mhz(mhz, sizeof(mhz), from_cpuid);
		snprintf(how, sizeof(how), "calibrated against %s%s%s%s%s", ref,
		         from_cpuid ? "; " : "", from_cpuid ? cpuid_src : "",
		         from_cpuid ? " said " : "", from_cpuid ? mhz : "");
	} else {
		set_tsc_hz(TSC_GUESS_HZ);
		tsc_source = "guessed";
		tsc_guessed = true;
		snprintf(how, sizeof(how), "GUESSED: no CPUID frequency, no PIT, no PM timer");
	}
	/* No reference source: time the LAPIC against the TSC we trust. */
	if (!lapic_fp && apic_mode != APIC_MODE_NONE)
		lapic_fp = lapic_calibrate_by_tsc(CALIBRATION_MS);
	lapic_timer_hz = mul_shift(tsc_hz, lapic_fp, 32);
	lapic_mult = (lapic_timer_hz << NS_TSC_SHIFT) / NSEC_PER_SEC;
	print_mhz(mhz, sizeof(mhz), tsc_hz);
	print_mhz(lmhz, sizeof(lmhz), lapic_timer_hz);
	kprintf("# time: TSC %s (%s), invariant TSC: %s\n", mhz, how, tsc_invariant ? "yes" : "no");
	kprintf("# time: LAPIC timer %s, TSC-deadline mode: %s, tick %d Hz\n", lmhz,
	        tsc_deadline_supported ? "supported" : "not supported", TICK_HZ);

	register_irq_handler(VEC_TIMER, timer_handler);
	timer_cpu_init();
}
