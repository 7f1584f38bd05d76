/*
 * Bringing up the application processors (INIT-SIPI-SIPI) and their life
 * afterwards: per-CPU set-up in ap_main() and the idle loop.
 *
 * All APs get their INIT at once and share one 10 ms wait; then each is
 * started with its SIPIs and waited for, one at a time, so the trampoline's
 * parameters (stack, id) are never shared.  Ids are dense and follow the
 * MADT order: an AP that does not answer is parked with another INIT and
 * the next one takes its id.  Each AP is online before the next starts.
 * The boot CPU allocates each AP's stacks (guarded, kstack_alloc) before
 * its SIPI; the AP runs on early_pml4 until ap_main loads the kernel's tables.
 */
#include "acpi.h"
#include "apic.h"
#include "apic/internal.h"
#include "cmdline.h"
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "mm.h"
#include "sched.h"
#include "smp.h"
#include "time.h"
#include "tlb.h"
#include "trap.h"
#include "x86.h"

#define AP_STACK_SIZE (16 * 1024) /* from kstack_alloc: a guard page below */
/* The SDM's MP initialisation protocol: INIT, 10 ms, SIPI, 200 us, SIPI. */
#define INIT_DELAY_MS 10
#define SIPI_RETRY_US 200
/*
 * An AP reaches 64-bit code within microseconds on hardware and a few
 * milliseconds under emulation, but an emulator whose vCPU threads
 * outnumber the host's cores can leave one unscheduled for a few hundred
 * milliseconds, and a loaded host for a second (4 vCPUs on 2 host CPUs
 * missed 500 ms): 2 s, times the vCPU overcommit the runner reported
 * (host_cpus=), as the watchdog scales.  (An AP that comes later finds
 * another AP's APIC ID in the parameters and parks itself.)
 */
#define AP_START_TIMEOUT_MS 2000
static uint64_t ap_start_timeout_ms;
/* From taking its parameters to being online: only our own set-up code runs. */
#define AP_ONLINE_TIMEOUT_MS 2000

#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_NXE (1ull << 11)

struct trampoline_params {
	uint32_t cr3;
	uint32_t efer;
	uint64_t entry;
	uint64_t stack;
	uint32_t cpu_id;
	uint32_t seq;
	volatile uint32_t ack;
	uint32_t apic_id; /* only this AP may take the parameters */
};

extern char trampoline_start[], trampoline_end[], trampoline_params[];
extern char early_pml4[]; /* boot/entry.asm: physical address, below 4 GiB */

cpumask_t cpu_online_mask;
static uint64_t bsp_cr0, bsp_cr4, bsp_cr3;

int num_online_cpus(void)
{
	int n = cpumask_weight(&cpu_online_mask);
	return n ? n : 1; /* before bring-up the boot CPU is all there is */
}

int cpu_from_apic_id(uint32_t apic_id)
{
	for (int i = 0; i < ncpus; i++)
		if (cpus[i].apic_id == apic_id)
			return i;
	return -1;
}

static void mark_online(int id)
{
	struct cpu *c = &cpus[id];
	c->online = true;
	cpumask_set_cpu(id, &cpu_online_mask);
}

/* Without kernel/sched linked in: never set, never called. */
__attribute__((weak)) volatile bool sched_running;
__attribute__((weak)) __noreturn void sched_idle_loop(void)
{
	for (;;)
		halt();
}

static __attribute__((noinline)) __noreturn void idle_loop(void)
{
	for (;;) {
		local_irq_disable();
		/* Once the scheduler runs, this context becomes the CPU's idle thread. */
		if (sched_running)
			sched_idle_loop();
		if (smp_idle_work())
			continue;
		irq_enable_hook();
		/* No TLB shootdown IPIs while idle: catch up on wake-up instead (tlb.h). */
		tlb_idle_enter();
		/* sti takes effect after hlt starts: a wake-up IPI cannot slip in between. */
		__asm__ volatile("sti; hlt" ::: "memory");
		tlb_idle_exit();
	}
}

__noreturn void ap_main(int id)
{
	struct cpu *c = &cpus[id];

	/*
	 * Same control registers as the boot CPU; the trampoline set only the
	 * minimum.  We run on early_pml4 (low identity map + the kernel's upper
	 * half) until this loads the kernel's own tables.
	 */
	write_cr4(bsp_cr4);
	__asm__ volatile("mov %0, %%cr0" : : "r"(bsp_cr0) : "memory");
	if (bsp_cr3 != read_cr3())
		write_cr3(bsp_cr3);
	cpu_init(c);
	lapic_ap_init();
	uint32_t seen = lapic_id();
	if (seen != c->apic_id)
		kprintf("# smp: CPU %d expected APIC id %u, has %u\n", id, c->apic_id, seen);
	timer_cpu_init();
	kvm_cpu_init(); /* steal time */
	mark_online(id);
	idle_loop();
}

static void prepare_cpu(int id, uint32_t apic_id)
{
	struct cpu *c = &cpus[id];

	c->apic_id = apic_id;
	c->arch = &apic_cpus[id];
	if (!c->stack_top) { /* kept when a failed AP's id is reused */
		void *stack = kstack_alloc(AP_STACK_SIZE);
		if (!stack)
			panic("no memory for CPU %d's stack", id);
		c->stack_top = (uint64_t)stack + AP_STACK_SIZE;
	}
	if (!c->tss.ist[0])
		cpu_setup_ist_stacks(c);
	percpu_setup(id);
}

/* Start one AP; true once it has taken its parameters. */
static bool start_ap(struct trampoline_params *tp, uint64_t page, int id, uint32_t apic_id)
{
	static uint32_t seq;

	tp->stack = cpus[id].stack_top;
	tp->cpu_id = (uint32_t)id;
	tp->apic_id = apic_id;
	tp->seq = ++seq;
	__atomic_store_n(&tp->ack, 0, __ATOMIC_RELEASE);
	uint32_t sipi = ICR_STARTUP | (uint32_t)(page >> 12);
	lapic_send_icr(apic_id, sipi);
	if (spin_until(tp->ack == seq, SIPI_RETRY_US * NSEC_PER_USEC))
		return true;
	lapic_send_icr(apic_id, sipi);
	if (spin_until(tp->ack == seq, ap_start_timeout_ms * NSEC_PER_MSEC))
		return true;
	/* Back to wait-for-SIPI: it must not wake later and run on reused parameters. */
	lapic_send_icr(apic_id, ICR_INIT | ICR_LEVEL_ASSERT);
	return false;
}

static void print_summary(uint64_t ns)
{
	char ids[400];
	size_t used = 0;

	ids[0] = '\0';
	for (int i = 0; i < ncpus && used + 16 < sizeof(ids); i++) {
		int j = i;
		while (j + 1 < ncpus && cpus[j + 1].apic_id == cpus[j].apic_id + 1)
			j++;
		if (j - i >= 4) {
			used += snprintf(ids + used, sizeof(ids) - used, " %u-%u", cpus[i].apic_id,
			                 cpus[j].apic_id);
			i = j;
		} else {
			used += snprintf(ids + used, sizeof(ids) - used, " %u", cpus[i].apic_id);
		}
	}
	kprintf("# smp: %d CPU%s online (APIC IDs%s%s), bring-up %lu.%03lu ms\n", num_online_cpus(),
	        num_online_cpus() == 1 ? "" : "s", ids, used + 16 >= sizeof(ids) ? " ..." : "",
	        ns / NSEC_PER_MSEC, (ns % NSEC_PER_MSEC) / 1000);
}

void smp_boot_aps(void)
{
	uint32_t bsp_id = lapic_id();
	uint64_t t0 = arch_now_ns();
	int targets[MAX_CPUS], ntargets = 0, parked = 0, unreachable = 0;

	cpus[0].apic_id = bsp_id;
	cpus[0].arch = &apic_cpus[0];
	mark_online(0);
	ipi_init();
	if (apic_mode == APIC_MODE_NONE || !acpi.have_madt) {
		ncpus = 1;
		ipi_alloc_slots(1);
		kprintf("# smp: boot CPU only\n");
		return;
	}
	for (int i = 0; i < acpi.ncpu; i++) {
		const struct acpi_cpu *ac = &acpi.cpu[i];
		if (!(ac->flags & ACPI_CPU_ENABLED) || ac->apic_id == bsp_id)
			continue;
		if (!lapic_can_address(ac->apic_id))
			unreachable++;
		else if (ntargets < MAX_CPUS - 1)
			targets[ntargets++] = i;
		else
			parked++;
	}
	parked += acpi.ncpu_seen - acpi.ncpu; /* entries the MADT parser could not even keep */
	if (unreachable)
		kprintf("# smp: %d CPU%s with APIC IDs the %s mode cannot address left parked\n",
		        unreachable, unreachable == 1 ? "" : "s", apic_mode_name(apic_mode));
	if (parked)
		kprintf("# smp: %d CPU%s beyond MAX_CPUS (%d) left parked\n", parked,
		        parked == 1 ? "" : "s", MAX_CPUS);

	int id = 1;
	if (ntargets) {
		uint64_t page = early_alloc_low_page();
		memcpy(phys_to_virt(page), trampoline_start,
		       (size_t)(trampoline_end - trampoline_start));
		struct trampoline_params *tp =
		    phys_to_virt(page + (uint64_t)(trampoline_params - trampoline_start));
		bsp_cr0 = read_cr0();
		bsp_cr4 = read_cr4();
		bsp_cr3 = read_cr3();
		tp->cr3 = (uint32_t)(uint64_t)early_pml4;
		tp->efer = (uint32_t)(rdmsr(MSR_EFER) & (EFER_LME | EFER_NXE | EFER_SCE));
		tp->entry = (uint64_t)ap_main;

		uint64_t over = 1;
		if (config.host_cpus > 0 && ntargets + 1 > config.host_cpus)
			over = (uint64_t)(ntargets + config.host_cpus) / config.host_cpus;
		ap_start_timeout_ms = AP_START_TIMEOUT_MS * over;
		for (int i = 0; i < ntargets; i++)
			lapic_send_icr(acpi.cpu[targets[i]].apic_id, ICR_INIT | ICR_LEVEL_ASSERT);
		mdelay(INIT_DELAY_MS);
		for (int i = 0; i < ntargets; i++) {
			uint32_t apic_id = acpi.cpu[targets[i]].apic_id;
			prepare_cpu(id, apic_id);
			if (!start_ap(tp, page, id, apic_id)) {
				kprintf("# smp: CPU %d (APIC id %u) did not start within %d ms; "
				        "parked\n",
				        id, apic_id, (int)ap_start_timeout_ms);
				continue;
			}
			/* Running our code now: its id is taken whatever happens next. */
			if (!spin_until(cpus[id].online, AP_ONLINE_TIMEOUT_MS * NSEC_PER_MSEC))
				kprintf(
				    "# smp: CPU %d (APIC id %u) started but did not come online\n",
				    id, apic_id);
			id++;
		}
	}
	ncpus = id;
	ipi_alloc_slots(ncpus);
	print_summary(arch_now_ns() - t0);
}
