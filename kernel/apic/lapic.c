/*
 * The local APIC: mode selection (xAPIC or x2APIC, from `apic=` and what
 * the CPU offers), per-CPU set-up, EOI, the spurious and error vectors,
 * and the interrupt command register every IPI goes through.
 */
#include "acpi.h"
#include "apic.h"
#include "cmdline.h"
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "mm.h"
#include "time.h"
#include "trap.h"
#include "x86.h"

#define APIC_BASE_BSP (1u << 8)
#define APIC_BASE_EXTD (1u << 10) /* x2APIC mode */
#define APIC_BASE_EN (1u << 11)
#define APIC_BASE_ADDR_MASK 0x000ffffffffff000ull
#define X2APIC_MSR_BASE 0x800
#define X2APIC_ICR 0x830
#define CPUID1_ECX_X2APIC (1u << 21)
#define CPUID1_EDX_APIC (1u << 9)
/*
 * A real xAPIC clears the delivery-status bit within microseconds; a
 * millisecond means the IPI is stuck (e.g. a target APIC that is gone).
 */
#define ICR_IDLE_TIMEOUT_NS 1000000ull
/* Firmware may leave interrupts in service; more than this many is a broken APIC. */
#define STALE_ISR_LIMIT 256
#define ERROR_REPORT_LIMIT 8

enum apic_mode apic_mode = APIC_MODE_NONE;
static volatile uint32_t *lapic_mmio;
volatile uint64_t apic_spurious_count, apic_error_count;

const char *apic_mode_name(enum apic_mode m)
{
	return m == APIC_MODE_X2APIC ? "x2APIC" : m == APIC_MODE_XAPIC ? "xAPIC" : "none";
}

bool x2apic_supported(void)
{
	uint32_t r[4];
	cpuid(1, 0, r);
	return r[2] & CPUID1_ECX_X2APIC;
}

uint32_t apic_read(uint32_t reg)
{
	if (apic_mode == APIC_MODE_X2APIC) {
		/* QEMU would stop with "Bad icount read" (calibrate.c): say who asked. */
		if (reg == APIC_TIMER_CUR && config.clock == CLOCK_VIRTUAL)
			panic("x2APIC timer count read under clock=virtual");
		return (uint32_t)rdmsr(X2APIC_MSR_BASE + (reg >> 4));
	}
	return lapic_mmio[reg / 4];
}

void apic_write(uint32_t reg, uint32_t v)
{
	if (apic_mode == APIC_MODE_X2APIC)
		wrmsr(X2APIC_MSR_BASE + (reg >> 4), v);
	else
		lapic_mmio[reg / 4] = v;
}

void lapic_eoi(void)
{
	apic_write(APIC_EOI, 0);
}

uint32_t lapic_id(void)
{
	if (apic_mode == APIC_MODE_X2APIC)
		return (uint32_t)rdmsr(X2APIC_MSR_BASE + (APIC_ID >> 4));
	if (apic_mode == APIC_MODE_XAPIC)
		return lapic_mmio[APIC_ID / 4] >> 24;
	uint32_t r[4];
	cpuid(1, 0, r);
	return r[1] >> 24;
}

bool lapic_can_address(uint32_t apic_id)
{
	/* xAPIC destinations are 8 bits and 0xff means "everyone". */
	return apic_mode == APIC_MODE_X2APIC ? apic_id != 0xffffffffu : apic_id < 0xff;
}

static bool icr_wait_idle(void)
{
	uint64_t deadline = rdtsc() + ns_to_tsc(ICR_IDLE_TIMEOUT_NS);
	while (lapic_mmio[APIC_ICR_LO / 4] & ICR_PENDING) {
		if ((int64_t)(rdtsc() - deadline) > 0)
			return false;
		cpu_relax();
	}
	return true;
}

bool lapic_send_icr(uint32_t dest, uint32_t low)
{
	if (apic_mode == APIC_MODE_X2APIC) {
		/*
		 * WRMSR to the x2APIC ICR is not ordered after earlier stores;
		 * the target must see what we wrote before the IPI.
		 */
		__asm__ volatile("mfence; lfence" ::: "memory");
		wrmsr(X2APIC_ICR, ((uint64_t)dest << 32) | low);
		return true;
	}
	if (apic_mode != APIC_MODE_XAPIC)
		return false;
	/* ICR is two registers: an interrupt between the writes would retarget ours. */
	unsigned long flags = local_irq_save();
	bool ok = icr_wait_idle();
	lapic_mmio[APIC_ICR_HI / 4] = dest << 24;
	lapic_mmio[APIC_ICR_LO / 4] = low;
	ok = icr_wait_idle() && ok;
	local_irq_restore(flags);
	return ok;
}

static void spurious_handler(struct trapframe *tf)
{
	(void)tf;
	/* No EOI: a spurious interrupt is not in service. */
	__atomic_fetch_add(&apic_spurious_count, 1, __ATOMIC_RELAXED);
}

static void error_handler(struct trapframe *tf)
{
	(void)tf;
	apic_write(APIC_ESR, 0); /* latch the errors into the readable register */
	uint32_t esr = apic_read(APIC_ESR);
	uint64_t n = __atomic_fetch_add(&apic_error_count, 1, __ATOMIC_RELAXED);
	if (n < ERROR_REPORT_LIMIT)
		kprintf("# apic: error interrupt on CPU %d, ESR %#x\n", smp_processor_id(), esr);
	lapic_eoi();
}

static void set_hw_mode(enum apic_mode mode)
{
	uint64_t base = rdmsr(MSR_APIC_BASE);

	if (mode == APIC_MODE_X2APIC) {
		if (!(base & APIC_BASE_EN))
			wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN);
		wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_EXTD);
	} else {
		/* x2APIC -> xAPIC is only allowed through the disabled state. */
		if (base & APIC_BASE_EXTD)
			wrmsr(MSR_APIC_BASE, base & ~(uint64_t)(APIC_BASE_EN | APIC_BASE_EXTD));
		wrmsr(MSR_APIC_BASE, (base & ~(uint64_t)APIC_BASE_EXTD) | APIC_BASE_EN);
	}
}

static unsigned max_lvt(void)
{
	return (apic_read(APIC_VERSION) >> 16) & 0xff;
}

/* What every CPU does to its own APIC once the mode is set. */
static void local_setup(bool bsp)
{
	unsigned lvts = max_lvt();

	apic_write(APIC_TPR, 0);
	apic_write(APIC_LVT_TIMER, APIC_LVT_MASKED | VEC_TIMER);
	if (lvts >= 4)
		apic_write(APIC_LVT_PERF, APIC_LVT_MASKED);
	if (lvts >= 5)
		apic_write(APIC_LVT_THERMAL, APIC_LVT_MASKED);
	/* The 8259s are masked; LINT1 carries the board's NMI to the boot CPU only. */
	apic_write(APIC_LVT_LINT0, APIC_LVT_MASKED);
	apic_write(APIC_LVT_LINT1, bsp ? APIC_LVT_DM_NMI : APIC_LVT_MASKED);
	apic_write(APIC_LVT_ERROR, VEC_ERROR);
	apic_write(APIC_ESR, 0);
	apic_write(APIC_ESR, 0);
	apic_write(APIC_SVR, APIC_SVR_ENABLE | VEC_SPURIOUS);

	/* An interrupt left in service by firmware would block ours at its priority. */
	for (int n = 0; n < STALE_ISR_LIMIT; n++) {
		bool any = false;
		for (int i = 0; i < 8; i++)
			any |= apic_read(APIC_ISR0 + i * 0x10) != 0;
		if (!any)
			break;
		lapic_eoi();
	}
}

static enum apic_mode choose_mode(void)
{
	bool x2 = x2apic_supported();
	bool fw_x2 = rdmsr(MSR_APIC_BASE) & APIC_BASE_EXTD;
	bool big_ids = false;

	for (int i = 0; i < acpi.ncpu; i++)
		big_ids |= acpi.cpu[i].apic_id >= 0xff;
	switch (config.apic) {
	case APIC_X2APIC:
		if (x2)
			return APIC_MODE_X2APIC;
		kprintf("# apic: x2APIC requested but not supported by this CPU; using xAPIC\n");
		return APIC_MODE_XAPIC;
	case APIC_XAPIC:
		if (big_ids)
			kprintf("# apic: xAPIC forced: CPUs with APIC IDs above 254 cannot be "
			        "reached and stay parked\n");
		if (fw_x2)
			kprintf("# apic: firmware enabled x2APIC; switching back to xAPIC\n");
		return APIC_MODE_XAPIC;
	case APIC_AUTO:
	default:
		if (!x2 && big_ids)
			kprintf(
			    "# apic: APIC IDs above 254 need x2APIC, which this CPU lacks; those "
			    "CPUs stay parked\n");
		return x2 ? APIC_MODE_X2APIC : APIC_MODE_XAPIC;
	}
}

void lapic_init(void)
{
	uint32_t r[4];

	cpuid(1, 0, r);
	if (!(r[3] & CPUID1_EDX_APIC)) {
		kprintf("# apic: no local APIC; running on the boot CPU alone, no timer tick\n");
		return;
	}
	enum apic_mode mode = choose_mode();
	uint64_t base = rdmsr(MSR_APIC_BASE) & APIC_BASE_ADDR_MASK;
	if (mode == APIC_MODE_XAPIC) {
		if (base + PAGE_SIZE > EARLY_PHYS_LIMIT)
			panic("local APIC base %#lx is outside the mapped 4 GiB", base);
		lapic_mmio = phys_to_virt(base);
	}
	set_hw_mode(mode);
	apic_mode = mode;
	register_irq_handler(VEC_SPURIOUS, spurious_handler);
	register_irq_handler(VEC_ERROR, error_handler);
	local_setup(true);
	if (acpi.have_madt && acpi.lapic_addr && acpi.lapic_addr != base)
		kprintf("# apic: MADT says the APIC is at %#lx, MSR says %#lx; using the MSR\n",
		        acpi.lapic_addr, base);
	kprintf("# apic: %s mode (x2APIC %s, apic=%s), boot CPU APIC id %u, version %#x, "
	        "%u LVT entries, base %#lx\n",
	        apic_mode_name(mode), x2apic_supported() ? "supported" : "not supported",
	        config.apic == APIC_X2APIC  ? "x2apic"
	        : config.apic == APIC_XAPIC ? "xapic"
	                                    : "auto",
	        lapic_id(), apic_read(APIC_VERSION) & 0xff, max_lvt() + 1, base);
}

void lapic_ap_init(void)
{
	if (apic_mode == APIC_MODE_NONE)
		return;
	set_hw_mode(apic_mode);
	local_setup(false);
}
