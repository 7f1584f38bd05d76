/*
 * The kernel's page tables (4-level, Intel SDM vol. 3 ch. 4).
 *
 * paging_init builds them once the frame allocator runs and switches the
 * boot CPU over; the APs switch in ap_main:
 *
 *   direct map   all RAM (and at least 4 GiB, for the MMIO the APIC code
 *                reaches through it), read/write, NX, global; 2 MiB pages
 *                below 4 GiB, 1 GiB pages above when the CPU has them.
 *                The kernel's text and rodata are read-only here too, and
 *                the local and I/O APIC pages are 4 KiB, uncached (PCD|PWT).
 *   kernel image 4 KiB pages: text read-only+executable, rodata read-only
 *                NX, data and bss read/write NX, global; the page under the
 *                boot stack is left out (its guard).
 *   VMAP, kmap   empty: kernel stacks, vm_map users and the kmap window.
 *
 * Nothing maps the lower half, so NULL (and any stray low address) faults.
 *
 * Every top-level entry of the upper half is created here and never
 * changes afterwards: the APs' early tables (boot/entry.asm's early_pml4,
 * which the trampoline must use because it keeps the low identity map the
 * trampoline runs in) get a copy of them, so the AP stacks in the VMAP area
 * are reachable before ap_main loads the final CR3, and stay in sync.
 *
 * Changes go through pt_lock; walks that only read (vm_translate) take no
 * lock: entries are written whole with single stores, and page-table pages
 * are never freed, so a reader sees the old or the new entry.
 */
#include "acpi.h"
#include "cpu.h"
#include "kernel.h"
#include "mm.h"
#include "mm/internal.h"
#include "multiboot.h"
#include "x86.h"

extern char _rodata[], _erodata[], _data[];
extern char early_pml4[];       /* boot/entry.asm, physical address */
extern char boot_stack_guard[]; /* boot/entry.asm, the page under the boot stack */

#define EFER_NXE (1ull << 11)
#define PML4_KERNEL_FIRST 256

bool cpu_has_nx, cpu_has_pge, cpu_has_1g;
uint64_t phys_map_end = EARLY_PHYS_LIMIT;

static uint64_t kernel_pml4; /* physical */
static bool pml4_frozen;
static DEFINE_RAW_SPINLOCK(pt_lock);

static const uint64_t level_size[4] = {0, PAGE_SIZE, LARGE_PAGE_SIZE, HUGE_PAGE_SIZE};

static inline unsigned pt_index(uint64_t va, int level)
{
	return (unsigned)(va >> (12 + 9 * (level - 1))) & 511;
}

static inline uint64_t *table_of(uint64_t entry)
{
	return phys_to_virt(entry & PTE_ADDR);
}

static uint64_t leaf_bits(unsigned flags, int level)
{
	uint64_t e = PTE_P | PTE_A | PTE_D;
	if (flags & VM_WRITE)
		e |= PTE_W;
	if (!(flags & VM_EXEC) && cpu_has_nx)
		e |= PTE_NX;
	if (flags & VM_UNCACHED)
		e |= PTE_PCD | PTE_PWT;
	if ((flags & VM_GLOBAL) && cpu_has_pge)
		e |= PTE_G;
	if (level > 1)
		e |= PTE_PS;
	return e;
}

static uint64_t table_alloc(void)
{
	return frame_alloc_zeroed();
}

/* Replace the large page at `entry` (level 3 or 2) by a table of the next size down. */
static bool split(uint64_t *entry, int level)
{
	uint64_t e = *entry;
	uint64_t pa = table_alloc();

	if (!pa)
		return false;
	uint64_t *t = phys_to_virt(pa);
	uint64_t attrs = e & (PTE_NX | 0x1ffull);
	uint64_t base = e & (level == 3 ? PTE_ADDR_1G : PTE_ADDR_2M);
	if (level == 2)
		attrs &= ~PTE_PS; /* bit 7 is PAT in a 4 KiB entry */
	for (int i = 0; i < 512; i++)
		t[i] = (base + (uint64_t)i * level_size[level - 1]) | attrs;
	/* Same translations as before: the TLB may keep the large one until the caller flushes. */
	WRITE_ONCE(*entry, pa | PTE_P | PTE_W);
	return true;
}

/*
 * The entry at `level` for va, creating tables and splitting large pages on
 * the way down; NULL on failure.  pt_lock held (or the tables not live yet).
 */
static uint64_t *entry_at(uint64_t va, int level)
{
	uint64_t *t = phys_to_virt(kernel_pml4);

	for (int l = 4; l > level; l--) {
		uint64_t *e = &t[pt_index(va, l)];
		if (!(*e & PTE_P)) {
			if (l == 4 && pml4_frozen)
				return NULL;
			uint64_t pa = table_alloc();
			if (!pa)
				return NULL;
			WRITE_ONCE(*e, pa | PTE_P | PTE_W);
		} else if (l < 4 && (*e & PTE_PS)) {
			if (!split(e, l))
				return NULL;
		}
		t = table_of(*e);
	}
	return &t[pt_index(va, level)];
}

uint64_t *pte_walk(uint64_t va, int *level)
{
	uint64_t *t = phys_to_virt(kernel_pml4);

	for (int l = 4; l >= 1; l--) {
		uint64_t *e = &t[pt_index(va, l)];
		uint64_t v = READ_ONCE(*e);
		if (!(v & PTE_P)) {
			*level = l;
			return NULL;
		}
		if (l == 1 || (l < 4 && (v & PTE_PS))) {
			*level = l;
			return e;
		}
		t = table_of(v);
	}
	return NULL;
}

uint64_t vm_translate(uint64_t va, uint64_t *page_size)
{
	int level;
	uint64_t *e = kernel_pml4 ? pte_walk(va, &level) : NULL;

	if (!e)
		return ~0ull;
	uint64_t v = READ_ONCE(*e);
	uint64_t size = level_size[level];
	uint64_t mask = level == 1 ? PTE_ADDR : level == 2 ? PTE_ADDR_2M : PTE_ADDR_1G;
	if (page_size)
		*page_size = size;
	return (v & mask) + (va & (size - 1));
}

uint64_t vm_pte(uint64_t va)
{
	int level;
	uint64_t *e = kernel_pml4 ? pte_walk(va, &level) : NULL;
	return e ? READ_ONCE(*e) : 0;
}

bool mm_addr_mapped(uint64_t va)
{
	return vm_translate(va, NULL) != ~0ull;
}

uint64_t mm_kernel_cr3(void)
{
	return kernel_pml4;
}

static bool kernel_half(uint64_t va, size_t len)
{
	return va >= PHYS_MAP_BASE && va + len >= va && !(va & (PAGE_SIZE - 1)) &&
	       !(len & (PAGE_SIZE - 1));
}

int vm_map(uint64_t va, uint64_t pa, size_t len, unsigned flags)
{
	unsigned long irq;
	int ret = 0;

	if (!kernel_half(va, len) || (pa & (PAGE_SIZE - 1)))
		return -1;
	raw_spin_lock_irqsave(&pt_lock, irq);
	for (uint64_t off = 0; off < len;) {
		uint64_t v = va + off, p = pa + off;
		int level = 1;
		if (!(flags & VM_4K) && !(v & (LARGE_PAGE_SIZE - 1)) &&
		    !(p & (LARGE_PAGE_SIZE - 1)) && len - off >= LARGE_PAGE_SIZE)
			level = 2;
		uint64_t *e = entry_at(v, level);
		if (!e) {
			ret = -1;
			break;
		}
		uint64_t old = *e;
		if ((old & PTE_P) && (!(flags & VM_REPLACE) || (level == 2 && !(old & PTE_PS)))) {
			ret = -1; /* taken (or, for a 2 MiB page, holding a table) */
			break;
		}
		WRITE_ONCE(*e, p | leaf_bits(flags, level));
		off += level_size[level];
	}
	raw_spin_unlock_irqrestore(&pt_lock, irq);
	return ret;
}

/*
 * Apply `fn` to the leaf entries covering [va, va+len), splitting large
 * pages that stick out of the range.  Holes are skipped.
 */
static int for_each_leaf(uint64_t va, size_t len, void (*fn)(uint64_t *e, int level, unsigned),
                         unsigned flags)
{
	unsigned long irq;
	int ret = 0;

	if (!kernel_half(va, len))
		return -1;
	raw_spin_lock_irqsave(&pt_lock, irq);
	for (uint64_t v = va, end = va + len; v < end;) {
		int level;
		uint64_t *e = pte_walk(v, &level);
		if (!e) { /* a hole as large as what a level-`level` entry maps */
			uint64_t size = level == 4 ? 512 * HUGE_PAGE_SIZE : level_size[level];
			uint64_t next = ALIGN_DOWN(v, size) + size;
			v = next > v ? next : end;
			continue;
		}
		while (level > 1 && (v & (level_size[level] - 1) || end - v < level_size[level])) {
			if (!split(e, level)) {
				ret = -1;
				goto out;
			}
			e = &table_of(*e)[pt_index(v, level - 1)];
			level--;
		}
		fn(e, level, flags);
		v += level_size[level];
	}
out:
	raw_spin_unlock_irqrestore(&pt_lock, irq);
	return ret;
}

static void unmap_one(uint64_t *e, int level, unsigned flags)
{
	(void)level;
	(void)flags;
	WRITE_ONCE(*e, 0);
}

static void protect_one(uint64_t *e, int level, unsigned flags)
{
	uint64_t keep = *e & (PTE_ADDR | PTE_PS | PTE_G | PTE_A | PTE_D);
	uint64_t bits = leaf_bits(flags, level) & ~(PTE_G | PTE_PS);
	WRITE_ONCE(*e, keep | bits);
}

int vm_unmap(uint64_t va, size_t len)
{
	return for_each_leaf(va, len, unmap_one, 0);
}

int vm_protect(uint64_t va, size_t len, unsigned flags)
{
	return for_each_leaf(va, len, protect_one, flags);
}

/* ---- The VMAP area's virtual space: one bit per page (set: taken). */

#define VMAP_PAGES (VMAP_SIZE / PAGE_SIZE)
static uint64_t vmap_used[VMAP_PAGES / 64];
static uint64_t vmap_hint;
static DEFINE_RAW_SPINLOCK(vmap_lock);

static bool vmap_taken(uint64_t i)
{
	return (vmap_used[i / 64] >> (i % 64)) & 1;
}

uint64_t vm_area_alloc(size_t len, uint64_t align)
{
	uint64_t n = ALIGN_UP(len, PAGE_SIZE) / PAGE_SIZE;
	uint64_t step = align > PAGE_SIZE ? align / PAGE_SIZE : 1;
	unsigned long irq;
	uint64_t found = 0;

	if (n == 0 || n > VMAP_PAGES)
		return 0;
	raw_spin_lock_irqsave(&vmap_lock, irq);
	for (int pass = 0; pass < 2 && !found; pass++) {
		uint64_t from = pass == 0 ? ALIGN_UP(vmap_hint, step) : 0;
		for (uint64_t i = from; i + n <= VMAP_PAGES; i += step) {
			uint64_t k = 0;
			while (k < n && !vmap_taken(i + k))
				k++;
			if (k == n) {
				for (k = 0; k < n; k++)
					vmap_used[(i + k) / 64] |= 1ull << ((i + k) % 64);
				vmap_hint = i + n;
				found = VMAP_BASE + i * PAGE_SIZE;
				break;
			}
			if (step == 1)
				i += k;
		}
	}
	raw_spin_unlock_irqrestore(&vmap_lock, irq);
	return found;
}

/* Give pages back to the VMAP area (their mappings are gone and flushed). */
void vm_area_release(uint64_t va, size_t npages)
{
	unsigned long irq;
	uint64_t first = (va - VMAP_BASE) / PAGE_SIZE;

	raw_spin_lock_irqsave(&vmap_lock, irq);
	for (uint64_t i = first; i < first + npages && i < VMAP_PAGES; i++) {
		if (!vmap_taken(i))
			panic("vm_area_free: %#lx was not allocated",
			      (uint64_t)(VMAP_BASE + i * PAGE_SIZE));
		vmap_used[i / 64] &= ~(1ull << (i % 64));
	}
	raw_spin_unlock_irqrestore(&vmap_lock, irq);
}

void vm_area_free(uint64_t va, size_t len)
{
	if (va < VMAP_BASE || va + len > VMAP_BASE + VMAP_SIZE)
		panic("vm_area_free: %#lx is outside the VMAP area", va);
	vm_area_release(va, ALIGN_UP(len, PAGE_SIZE) / PAGE_SIZE);
}

/* ---- Building the tables. */

static void must(bool ok, const char *what)
{
	if (!ok)
		panic("mm: out of memory building the kernel page tables (%s)", what);
}

static void map_direct(void)
{
	uint64_t top = EARLY_PHYS_LIMIT;

	for (int i = 0; i < boot_info.mmap_count; i++) {
		const struct mmap_entry *e = &boot_info.mmap[i];
		if (e->type == MMAP_USABLE || e->type == MMAP_ACPI_RECLAIMABLE ||
		    e->type == MMAP_ACPI_NVS) {
			if (e->base + e->length > top)
				top = e->base + e->length;
		}
	}
	top = ALIGN_UP(top, HUGE_PAGE_SIZE);
	if (top > PHYS_MAP_MAX)
		top = PHYS_MAP_MAX;
	uint64_t bits =
	    PTE_P | PTE_W | PTE_A | PTE_D | (cpu_has_nx ? PTE_NX : 0) | (cpu_has_pge ? PTE_G : 0);
	for (uint64_t pa = 0; pa < top;) {
		bool huge = pa >= EARLY_PHYS_LIMIT && cpu_has_1g;
		int level = huge ? 3 : 2;
		uint64_t *e = entry_at(PHYS_MAP_BASE + pa, level);
		must(e != NULL, "direct map");
		*e = pa | bits | PTE_PS;
		pa += level_size[level];
	}
	phys_map_end = top;

	/* The kernel's own text and rodata stay read-only through this alias too. */
	uint64_t ro = virt_to_phys(_text), ro_end = virt_to_phys(_data);
	must(vm_protect(PHYS_MAP_BASE + ro, ro_end - ro, VM_GLOBAL) == 0, "kernel alias");
	/* APIC registers: uncached (the xAPIC code reaches them through phys_to_virt). */
	uint64_t lapic = rdmsr(MSR_APIC_BASE) & ~(PAGE_SIZE - 1) & 0x000ffffffffff000ull;
	if (lapic && lapic < top)
		must(vm_protect(PHYS_MAP_BASE + lapic, PAGE_SIZE,
		                VM_WRITE | VM_UNCACHED | VM_GLOBAL) == 0,
		     "LAPIC");
	for (int i = 0; i < acpi.nioapic; i++) {
		uint64_t io = ALIGN_DOWN((uint64_t)acpi.ioapic[i].addr, PAGE_SIZE);
		if (io && io < top)
			must(vm_protect(PHYS_MAP_BASE + io, PAGE_SIZE,
			                VM_WRITE | VM_UNCACHED | VM_GLOBAL) == 0,
			     "I/O APIC");
	}
}

static void map_kernel_image(void)
{
	uint64_t guard = (uint64_t)boot_stack_guard;

	for (uint64_t va = (uint64_t)_kernel_start; va < (uint64_t)_kernel_end; va += PAGE_SIZE) {
		unsigned flags = VM_GLOBAL | VM_4K;
		if (va == guard)
			continue;
		if (va < (uint64_t)_rodata)
			flags |= VM_EXEC;
		else if (va >= (uint64_t)_data)
			flags |= VM_WRITE;
		uint64_t *e = entry_at(va, 1);
		must(e != NULL, "kernel image");
		*e = (va - KERNEL_VMA) | leaf_bits(flags, 1);
	}
}

void paging_init(void)
{
	uint32_t r[4];

	cpuid(0x80000000, 0, r);
	if (r[0] >= 0x80000001) {
		cpuid(0x80000001, 0, r);
		cpu_has_1g = (r[3] >> 26) & 1;
	}
	cpu_has_nx = (rdmsr(MSR_EFER) & EFER_NXE) != 0;
	cpu_has_pge = (read_cr4() & CR4_PGE) != 0;

	kernel_pml4 = table_alloc();
	must(kernel_pml4 != 0, "top level");
	map_direct();
	map_kernel_image();
	/* The VMAP/kmap slot's table, so that it too is a fixed top-level entry. */
	must(entry_at(VMAP_BASE, 3) != NULL, "VMAP area");
	pml4_frozen = true;

	/* The APs' trampoline tables: their low identity map plus our upper half. */
	uint64_t *early = phys_to_virt((uint64_t)early_pml4);
	uint64_t *final = phys_to_virt(kernel_pml4);
	for (int i = PML4_KERNEL_FIRST; i < 512; i++)
		early[i] = final[i];

	/* No global entries in the early tables: the CR3 load drops all of them. */
	write_cr3(kernel_pml4);
}

/*
 * A not-present 4 KiB entry may carry a value of ours (bit 0 clear, so the
 * CPU ignores the rest): kernel stacks keep their size in their guard page's.
 */
int vm_set_marker(uint64_t va, uint64_t value)
{
	unsigned long irq;
	int ret = -1;

	raw_spin_lock_irqsave(&pt_lock, irq);
	uint64_t *e = entry_at(va, 1);
	if (e && !(*e & PTE_P)) {
		WRITE_ONCE(*e, value << 1);
		ret = 0;
	}
	raw_spin_unlock_irqrestore(&pt_lock, irq);
	return ret;
}

uint64_t vm_get_marker(uint64_t va)
{
	int level;
	if (pte_walk(va, &level) || level != 1)
		return 0; /* mapped, or no page table there */
	uint64_t *t = phys_to_virt(kernel_pml4);
	for (int l = 4; l > 1; l--)
		t = table_of(READ_ONCE(t[pt_index(va, l)]));
	return READ_ONCE(t[pt_index(va, 1)]) >> 1;
}
