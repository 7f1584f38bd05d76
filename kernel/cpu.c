/*
 * Per-CPU set-up: the GDT (with one TSS per CPU, for the interrupt stacks),
 * the GS base that makes this_cpu() work, and the per-CPU variable areas.
 */
#include "cpu.h"
#include "kernel.h"
#include "mm.h"
#include "trap.h"
#include "x86.h"

#define GDT_KERNEL_CODE 1
#define GDT_KERNEL_DATA 2
#define GDT_TSS_FIRST 3 /* each TSS descriptor takes two slots */
#define GDT_ENTRIES (GDT_TSS_FIRST + 2 * MAX_CPUS)
#define IST_STACK_SIZE 8192

struct cpu cpus[MAX_CPUS];
int ncpus = 1;

static uint64_t gdt[GDT_ENTRIES] __attribute__((aligned(16)));
/* The boot CPU's interrupt stacks until mm_init gives it guarded ones. */
static uint8_t boot_ist_stacks[3][IST_STACK_SIZE] __attribute__((aligned(16)));

struct gdt_ptr {
	uint16_t limit;
	uint64_t base;
} __packed;

void gdt_init(void)
{
	gdt[0] = 0;
	gdt[GDT_KERNEL_CODE] = 0x00af9a000000ffffull; /* present, DPL0, code, L=1 */
	gdt[GDT_KERNEL_DATA] = 0x00cf92000000ffffull; /* present, DPL0, data, writable */
}

static void set_tss_descriptor(int id, struct tss *tss)
{
	uint64_t base = (uint64_t)tss;
	uint64_t limit = sizeof(*tss) - 1;
	int slot = GDT_TSS_FIRST + 2 * id;

	gdt[slot] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
	            (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[slot + 1] = base >> 32;
}

static void load_gdt_and_tss(int id)
{
	struct gdt_ptr p = {sizeof(gdt) - 1, (uint64_t)gdt};
	uint16_t tss_sel = (uint16_t)((GDT_TSS_FIRST + 2 * id) * 8);

	__asm__ volatile("lgdt %0\n\t"
	                 "mov %1, %%ds\n\t"
	                 "mov %1, %%es\n\t"
	                 "mov %1, %%ss\n\t"
	                 "pushq %2\n\t"
	                 "leaq 1f(%%rip), %%rax\n\t"
	                 "pushq %%rax\n\t"
	                 "lretq\n"
	                 "1:\n\t"
	                 "ltr %3"
	                 :
	                 : "m"(p), "r"((uint64_t)GDT_KERNEL_DATA * 8), "i"(GDT_KERNEL_CODE * 8),
	                   "r"(tss_sel)
	                 : "rax", "memory");
}

void cpu_init(struct cpu *c)
{
	int id = (int)(c - cpus);

	c->self = c;
	c->id = id;
	for (int i = 0; i < 3; i++) {
		if (c->tss.ist[i]) /* set up beforehand (cpu_setup_ist_stacks) */
			continue;
		uint8_t *stack = id == 0 ? boot_ist_stacks[i] : early_alloc(IST_STACK_SIZE, 16);
		c->tss.ist[i] = (uint64_t)(stack + IST_STACK_SIZE);
	}
	c->tss.iomap_base = sizeof(struct tss);
	set_tss_descriptor(id, &c->tss);
	load_gdt_and_tss(id);
	/* GS is zeroed by the segment reload above: set its base afterwards. */
	__asm__ volatile("mov %0, %%gs" : : "r"(0));
	wrmsr(MSR_GS_BASE, (uint64_t)c);
	idt_load();
}

/*
 * The boot CPU starts on static stacks (no allocator yet) and moves to
 * guarded ones in mm_init; an AP gets them from the boot CPU before it starts.
 * The TSS is read at each interrupt, so changing it under a live TR is fine.
 */
void cpu_setup_ist_stacks(struct cpu *c)
{
	for (int i = 0; i < 3; i++) {
		uint8_t *stack = kstack_alloc(IST_STACK_SIZE);
		if (!stack)
			panic("no memory for CPU %d's interrupt stacks", (int)(c - cpus));
		c->tss.ist[i] = (uint64_t)(stack + IST_STACK_SIZE);
	}
}

int smp_processor_id(void)
{
	return this_cpu()->id;
}

bool need_resched(void)
{
	return this_cpu()->resched;
}

void percpu_setup(int id)
{
	size_t size = (size_t)(__percpu_end - __percpu_start);

	if (id == 0 || size == 0) {
		cpus[id].percpu_offset = 0;
		return;
	}
	char *area = early_alloc(ALIGN_UP(size, CACHE_LINE), CACHE_LINE);
	memcpy(area, __percpu_start, size);
	cpus[id].percpu_offset = (uint64_t)(area - __percpu_start);
}
