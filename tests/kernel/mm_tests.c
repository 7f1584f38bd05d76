/*
 * Memory checks, run first in the `tlb` suite: the protections the kernel
 * page tables promise (text read-only, data and the direct map not
 * executable, NULL unmapped), guard pages under every kernel stack, the
 * frame allocator (no frame handed out twice or from memory it must keep
 * out), the direct map over all RAM, and 2 MiB pages that split when part
 * of them changes.
 */
#include "acpi.h"
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "ktest.h"
#include "mm.h"
#include "multiboot.h"
#include "smp.h"
#include "time.h"
#include "tlb.h"
#include "trap.h"
#include "x86.h"

#define PF_PRESENT 0x1
#define PF_WRITE 0x2
#define PF_FETCH 0x10
#define PTE_W_BIT (1ull << 1)
#define PTE_PWT_BIT (1ull << 3)
#define PTE_PCD_BIT (1ull << 4)
#define PTE_PS_BIT (1ull << 7)
#define PTE_NX_BIT (1ull << 63)
#define EFER_NXE (1ull << 11)

extern char boot_stack_top[];
extern char _rodata[], _data[];

static const uint64_t ro_word = 0x0123456789abcdefull;
/* `ret`, in writable data: executing it must fault. */
static uint8_t data_ret[16] __attribute__((aligned(16))) = {0xc3};

struct probe {
	int vector;
	uint64_t error;
};

/*
 * Read, write or call `addr` under a fault catch.  A write stores the byte
 * readable at `addr`'s other mapping `same` (or 0), so that a protection that
 * failed to hold changes nothing.
 */
enum access { READ, WRITE, EXEC };

static struct probe try_access_as(uint64_t addr, enum access how, uint64_t same)
{
	struct fault_catch fc;
	volatile uint8_t *p = (volatile uint8_t *)addr;
	uint8_t v = same ? *(volatile uint8_t *)same : 0;

	fault_catch_begin(&fc);
	if (kernel_setjmp(&fc.jb) == 0) {
		if (how == READ)
			(void)*p;
		else if (how == WRITE)
			*p = v;
		else
			((void (*)(void))addr)();
	}
	fault_catch_end();
	return (struct probe){fc.vector, fc.error};
}

/* Mapped addresses are written with their own contents, unmapped ones with 0. */
static struct probe try_access(uint64_t addr, enum access how)
{
	return try_access_as(addr, how, how == WRITE && mm_addr_mapped(addr) ? addr : 0);
}

static void expect_fault(uint64_t addr, enum access how, uint64_t error_bits, const char *what)
{
	struct probe r = try_access(addr, how);
	if (r.vector != VEC_PF || (r.error & error_bits) != error_bits)
		kt_fail(__FILE__, __LINE__,
		        "%s at %#lx: expected #PF with error bits %#lx, got %s%d "
		        "error %#lx",
		        what, addr, error_bits, r.vector < 0 ? "no fault " : "vector ", r.vector,
		        r.error);
}

static void expect_ok(uint64_t addr, enum access how, const char *what)
{
	struct probe r = try_access(addr, how);
	if (r.vector >= 0)
		kt_fail(__FILE__, __LINE__, "%s at %#lx faulted (vector %d, error %#lx)", what,
		        addr, r.vector, r.error);
}

static bool nx_on(void)
{
	return (rdmsr(MSR_EFER) & EFER_NXE) != 0;
}

KTEST(tlb, nx_and_write_protect, .timeout_ms = 2000)
{
	uint64_t text = (uint64_t)try_access;
	uint64_t text_alias = (uint64_t)phys_to_virt(virt_to_phys((void *)text));

	expect_ok(text, READ, "reading kernel text");
	expect_fault(text, WRITE, PF_PRESENT | PF_WRITE, "writing kernel text");
	expect_fault((uint64_t)&ro_word, WRITE, PF_PRESENT | PF_WRITE, "writing rodata");
	expect_fault(text_alias, WRITE, PF_PRESENT | PF_WRITE,
	             "writing text through the direct map");
	expect_ok((uint64_t)data_ret, WRITE, "writing data");
	KT_EXPECT_EQ(ro_word, 0x0123456789abcdefull);

	if (!nx_on()) {
		kprintf("  # this CPU has no NX: execute protection not checked\n");
		return;
	}
	expect_fault((uint64_t)data_ret, EXEC, PF_PRESENT | PF_FETCH, "executing data");
	expect_fault((uint64_t)&ro_word, EXEC, PF_PRESENT | PF_FETCH, "executing rodata");
	expect_fault(text_alias, EXEC, PF_PRESENT | PF_FETCH, "executing the direct map");
	uint8_t *stack = kstack_alloc(PAGE_SIZE);
	KT_EXPECT(stack != NULL);
	if (stack) {
		stack[0] = 0xc3;
		expect_fault((uint64_t)stack, EXEC, PF_PRESENT | PF_FETCH,
		             "executing a kernel stack");
		kstack_free(stack);
	}
	/* Text is executable: the probe itself ran from it. */
	KT_EXPECT(!(vm_pte(text) & PTE_NX_BIT));
	KT_EXPECT(vm_pte((uint64_t)_rodata) & PTE_NX_BIT);
	KT_EXPECT(vm_pte((uint64_t)_data) & PTE_NX_BIT);
	KT_EXPECT(vm_pte((uint64_t)phys_to_virt(0x100000)) & PTE_NX_BIT);
}

KTEST(tlb, null_and_low_memory_unmapped, .timeout_ms = 2000)
{
	expect_fault(0, READ, 0, "reading NULL");
	expect_fault(8, WRITE, PF_WRITE, "writing near NULL");
	expect_fault(0x100000, READ, 0, "reading the old identity map");
	KT_EXPECT_EQ(try_access(0, READ).error & PF_PRESENT, 0);
	KT_EXPECT(!mm_addr_mapped(0));
	KT_EXPECT(!mm_addr_mapped(0x7ffffffff000ull));
}

/* The lowest mapped byte of the stack whose top is `top`, if an unmapped page lies below it. */
static uint64_t guard_below(uint64_t top, uint64_t max)
{
	uint64_t va = ALIGN_DOWN(top - 1, PAGE_SIZE);
	for (uint64_t n = 0; n * PAGE_SIZE < max; n++, va -= PAGE_SIZE)
		if (!mm_addr_mapped(va))
			return n ? va + PAGE_SIZE : 0;
	return 0;
}

KTEST(tlb, kernel_stack_guards, .timeout_ms = 2000)
{
	uint8_t *s = kstack_alloc(KSTACK_DEFAULT_SIZE);

	KT_EXPECT(s != NULL);
	if (!s)
		return;
	uint64_t base = (uint64_t)s, top = base + KSTACK_DEFAULT_SIZE;
	expect_ok(base, WRITE, "bottom of a stack");
	expect_ok(top - 1, WRITE, "top of a stack");
	KT_EXPECT_EQ(s[1] | s[KSTACK_DEFAULT_SIZE - 2], 0); /* zeroed */
	expect_fault(base - 8, WRITE, PF_WRITE, "the guard page under a stack");
	expect_fault(top, READ, 0, "the page above a stack");
	KT_EXPECT_EQ(guard_below(top, 64 * 1024), base);
	kstack_free(s);
	expect_fault(base, READ, 0, "a freed stack");

	/* Every CPU's stack and interrupt stacks, and the boot stack. */
	for (int c = 0; c < ncpus; c++) {
		if (c > 0 && !guard_below(cpus[c].stack_top, 64 * 1024))
			kt_fail(__FILE__, __LINE__, "CPU %d's stack has no guard page", c);
		for (int i = 0; i < 3; i++)
			if (!guard_below(cpus[c].tss.ist[i], 64 * 1024))
				kt_fail(__FILE__, __LINE__,
				        "CPU %d's IST stack %d has no guard page", c, i + 1);
	}
	KT_EXPECT(guard_below((uint64_t)boot_stack_top, 64 * 1024) != 0);

	/* Many stacks: distinct, each guarded, all freed. */
	void *many[32];
	for (int i = 0; i < 32; i++) {
		many[i] = kstack_alloc(PAGE_SIZE * (1 + (size_t)i % 4));
		KT_EXPECT(many[i] != NULL);
		if (many[i])
			KT_EXPECT(!mm_addr_mapped((uint64_t)many[i] - 8));
	}
	for (int i = 0; i < 32; i++)
		if (many[i])
			kstack_free(many[i]);
}

/* ---- Frames. */

#define FRAMES_PER_CPU 256

struct frames_run {
	uint64_t frames[MAX_CPUS][FRAMES_PER_CPU];
	volatile int allocated, bad;
};

static void frames_worker(void *arg)
{
	struct frames_run *r = arg;
	int me = smp_processor_id(), n = num_online_cpus();

	for (int i = 0; i < FRAMES_PER_CPU; i++) {
		uint64_t pa = frame_alloc();
		r->frames[me][i] = pa;
		if (!pa)
			continue;
		uint64_t *p = phys_to_virt(pa);
		p[0] = p[511] = (uint64_t)me << 32 | (uint64_t)i;
	}
	__atomic_add_fetch(&r->allocated, 1, __ATOMIC_ACQ_REL);
	spin_until(__atomic_load_n(&r->allocated, __ATOMIC_ACQUIRE) >= n, 5 * NSEC_PER_SEC);
	for (int i = 0; i < FRAMES_PER_CPU; i++) {
		uint64_t pa = r->frames[me][i];
		uint64_t *p = phys_to_virt(pa);
		if (!pa || p[0] != ((uint64_t)me << 32 | (uint64_t)i) || p[511] != p[0])
			__atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
		if (pa)
			frame_free(pa);
	}
}

KTEST(tlb, frames_per_cpu, .timeout_ms = 10000)
{
	static struct frames_run run;
	struct frame_stats before, after;

	memset(&run, 0, sizeof(run));
	frame_stats(&before);
	KT_EXPECT_EQ(smp_run_all(frames_worker, &run, 8000), 0);
	KT_EXPECT_EQ(run.bad, 0);
	frame_stats(&after);
	/* Frames held back for earlier shootdowns may have been released meanwhile. */
	KT_EXPECT_EQ(after.free + after.deferred, before.free + before.deferred);
	kprintf("  # %lu frames managed, %lu free, %d CPUs allocated %d each at once\n",
	        after.total, after.free, num_online_cpus(), FRAMES_PER_CPU);
}

static bool inside(uint64_t pa, uint64_t start, uint64_t end)
{
	return pa + PAGE_SIZE > start && pa < end;
}

/* Nothing the allocator hands out may be memory it must keep out. */
KTEST(tlb, frames_keep_out, .timeout_ms = 20000)
{
	uint64_t kstart = 0x100000, kend = ALIGN_UP(virt_to_phys(_kernel_end), PAGE_SIZE);
	uint64_t mbi = ALIGN_DOWN(boot_info.mbi_phys, PAGE_SIZE);
	uint64_t mbi_end = ALIGN_UP(boot_info.mbi_phys + boot_info.mbi_size, PAGE_SIZE);
	const struct acpi_sdt_header *madt = acpi_find_table("APIC", 0);
	uint64_t madt_pa = madt ? virt_to_phys(madt) : 0;
	uint64_t percpu1 = ncpus > 1 ? virt_to_phys(__percpu_start + cpus[1].percpu_offset) : 0;
	uint64_t count = 0, bad = 0, limit = 1ull << 18; /* 1 GiB worth at most */
	/* What we took, in pages of our own: [0] the previous page, [1] its count, then frames. */
	uint64_t *page = NULL;

	/* Take frames until none is left (or the limit). */
	for (uint64_t pa; count < limit && (pa = frame_alloc()) != 0; count++) {
		bool wrong = pa < 0x100000 || inside(pa, kstart, kend) ||
		             inside(pa, mbi, mbi_end) ||
		             (madt_pa && inside(pa, madt_pa, madt_pa + madt->length)) ||
		             (percpu1 && inside(pa, percpu1, percpu1 + 1));
		for (int i = 0; i < boot_info.mmap_count && !wrong; i++) {
			const struct mmap_entry *e = &boot_info.mmap[i];
			if (e->type != MMAP_USABLE && inside(pa, e->base, e->base + e->length))
				wrong = true;
		}
		if (wrong && bad++ < 5)
			kt_fail(__FILE__, __LINE__, "frame %#lx should have been kept out", pa);
		if (!page || page[1] == 510) {
			uint64_t *next = phys_to_virt(pa);
			next[0] = (uint64_t)page;
			next[1] = 0;
			page = next;
			continue;
		}
		page[2 + page[1]++] = pa;
		if (count % 64 == 0) /* some of them written to, whole */
			memset(phys_to_virt(pa), 0xa5, PAGE_SIZE);
	}
	struct frame_stats fs;
	frame_stats(&fs);
	kprintf("  # took %lu frames (%lu MiB), %lu left in other CPUs' caches\n", count,
	        count / 256, fs.free);
	/* The ACPI tables and the boot information survived: nobody wrote into them. */
	if (madt)
		KT_EXPECT(acpi_map_table(madt_pa, "APIC") != NULL);
	KT_EXPECT(boot_info.cmdline == NULL || strlen(boot_info.cmdline) < 4096);
	while (page) {
		uint64_t *prev = (uint64_t *)page[0];
		for (uint64_t i = 0; i < page[1]; i++)
			frame_free(page[2 + i]);
		frame_free(virt_to_phys(page));
		page = prev;
	}
}

/* All RAM is in the direct map, above 4 GiB too. */
KTEST(tlb, direct_map_covers_ram, .timeout_ms = 5000)
{
	uint64_t above = 0, top = 0;

	for (int i = 0; i < boot_info.mmap_count; i++) {
		const struct mmap_entry *e = &boot_info.mmap[i];
		if (e->type != MMAP_USABLE && e->type != MMAP_ACPI_RECLAIMABLE &&
		    e->type != MMAP_ACPI_NVS)
			continue;
		uint64_t first = ALIGN_UP(e->base, PAGE_SIZE);
		uint64_t last = ALIGN_DOWN(e->base + e->length, PAGE_SIZE) - PAGE_SIZE;
		if (last < first || last > (1ull << 46))
			continue;
		if (e->base + e->length > top)
			top = e->base + e->length;
		expect_ok((uint64_t)phys_to_virt(first), READ, "first page of a RAM region");
		expect_ok((uint64_t)phys_to_virt(last), READ, "last page of a RAM region");
		if (e->type == MMAP_USABLE && e->base + e->length > EARLY_PHYS_LIMIT)
			above += e->base + e->length -
			         (e->base > EARLY_PHYS_LIMIT ? e->base : EARLY_PHYS_LIMIT);
	}
	KT_EXPECT(phys_map_end >= top);
	struct frame_stats fs;
	frame_stats(&fs);
	KT_EXPECT_EQ(fs.above_4g > 0, above > 0);
	if (above) {
		/* A frame from above 4 GiB, written and read back through the direct map. */
		uint64_t pa = frame_alloc_contig(1, PAGE_SIZE, EARLY_PHYS_LIMIT, ~0ull);
		KT_EXPECT(pa >= EARLY_PHYS_LIMIT);
		if (pa) {
			volatile uint64_t *p = phys_to_virt(pa);
			p[0] = 0xfeedfacecafebeefull;
			KT_EXPECT_EQ(p[0], 0xfeedfacecafebeefull);
			frame_free_contig(pa, 1);
		}
		kprintf("  # %lu MiB of RAM above 4 GiB, mapped up to %lu GiB\n", above >> 20,
		        phys_map_end >> 30);
	} else {
		kprintf("  # no RAM above 4 GiB here (run with --memory 6144 to check it)\n");
	}
	/* The APIC registers are uncached. */
	uint64_t lapic = rdmsr(MSR_APIC_BASE) & 0x000ffffffffff000ull;
	uint64_t pte = vm_pte((uint64_t)phys_to_virt(lapic));
	KT_EXPECT((pte & (PTE_PCD_BIT | PTE_PWT_BIT)) == (PTE_PCD_BIT | PTE_PWT_BIT));
	KT_EXPECT(!(pte & PTE_PS_BIT));
	for (int i = 0; i < acpi.nioapic; i++) {
		pte = vm_pte((uint64_t)phys_to_virt(acpi.ioapic[i].addr));
		KT_EXPECT((pte & (PTE_PCD_BIT | PTE_PWT_BIT)) == (PTE_PCD_BIT | PTE_PWT_BIT));
	}
}

/* A 2 MiB page, then a 4 KiB part of it made read-only: the page splits. */
KTEST(tlb, large_pages_split, .timeout_ms = 5000)
{
	uint64_t va = vm_area_alloc(LARGE_PAGE_SIZE, LARGE_PAGE_SIZE);
	uint64_t pa = frame_alloc_contig(512, LARGE_PAGE_SIZE, 0, ~0ull);
	uint64_t size = 0;

	KT_EXPECT(va != 0 && pa != 0);
	if (!va || !pa)
		return;
	KT_EXPECT_EQ(vm_map(va, pa, LARGE_PAGE_SIZE, VM_WRITE), 0);
	KT_EXPECT_EQ(vm_translate(va + 0x12345, &size), pa + 0x12345);
	KT_EXPECT_EQ(size, LARGE_PAGE_SIZE);
	KT_EXPECT(vm_pte(va) & PTE_PS_BIT);
	KT_EXPECT_EQ(vm_map(va, pa, PAGE_SIZE, VM_WRITE), -1); /* taken */
	expect_ok(va + PAGE_SIZE, WRITE, "a 2 MiB page");

	KT_EXPECT_EQ(vm_protect(va + PAGE_SIZE, PAGE_SIZE, 0), 0);
	flush_tlb_range_mode(va + PAGE_SIZE, va + 2 * PAGE_SIZE, TLB_SYNC);
	KT_EXPECT(!(vm_pte(va) & PTE_PS_BIT));
	KT_EXPECT_EQ(vm_translate(va + PAGE_SIZE + 8, &size), pa + PAGE_SIZE + 8);
	KT_EXPECT_EQ(size, PAGE_SIZE);
	KT_EXPECT(!(vm_pte(va + PAGE_SIZE) & PTE_W_BIT));
	expect_fault(va + PAGE_SIZE, WRITE, PF_PRESENT | PF_WRITE, "a read-only 4 KiB part");
	expect_ok(va, WRITE, "the rest of the split page");
	expect_ok(va + 2 * PAGE_SIZE, WRITE, "the rest of the split page");

	KT_EXPECT_EQ(vm_unmap(va, LARGE_PAGE_SIZE), 0);
	flush_tlb_range_mode(va, va + LARGE_PAGE_SIZE, TLB_SYNC);
	expect_fault(va + 3 * PAGE_SIZE, READ, 0, "an unmapped page");
	KT_EXPECT(!mm_addr_mapped(va));
	frame_free_contig(pa, 512);
	vm_area_free(va, LARGE_PAGE_SIZE);
}
