/*
 * Memory: the kernel's address space, physical frames, page tables,
 * guarded kernel stacks and the kmap window (docs/mm.md).
 *
 * Kernel virtual layout (the lower half is unmapped: NULL faults):
 *
 *   0xffff800000000000  direct map of physical memory, all RAM (NX, global)
 *   0xffffff0000000000  VMAP area, 1 GiB: kernel stacks and vm_area_alloc()
 *   0xffffff0040000000  kmap window, KMAP_SLOTS pages
 *   0xffffffff80000000  kernel image (text RX, rodata R NX, data/bss RW NX)
 *
 * TLB shootdown (flush_tlb_range and friends) is in tlb.h.
 */
#ifndef LOCKLAB_MM_H
#define LOCKLAB_MM_H

#include "types.h"

#define PAGE_SIZE 4096ull
#define LARGE_PAGE_SIZE (2ull << 20)
#define HUGE_PAGE_SIZE (1ull << 30)
#define KERNEL_VMA 0xffffffff80000000ull
/* All physical memory is mapped here, [0, phys_map_end). */
#define PHYS_MAP_BASE 0xffff800000000000ull
/* What the early tables (boot/entry.asm) map, before mm_init. */
#define EARLY_PHYS_LIMIT (4ull << 30)
#define PHYS_MAP_MAX (64ull << 40)

#define VMAP_BASE 0xffffff0000000000ull
#define VMAP_SIZE (1ull << 30)
#define KMAP_BASE (VMAP_BASE + VMAP_SIZE)
#define KMAP_SLOTS 512
#define KMAP_END (KMAP_BASE + KMAP_SLOTS * PAGE_SIZE)

static inline void *phys_to_virt(uint64_t pa)
{
	return (void *)(pa + PHYS_MAP_BASE);
}

/* For direct-map and kernel-image addresses; vm_translate() for the rest. */
static inline uint64_t virt_to_phys(const void *va)
{
	uint64_t v = (uint64_t)va;
	return v >= KERNEL_VMA ? v - KERNEL_VMA : v - PHYS_MAP_BASE;
}

extern char _kernel_start[], _kernel_end[], _text[], _etext[];
extern char __percpu_start[], __percpu_end[];

/* End of the direct map (at least 4 GiB; all RAM once mm_init has run). */
extern uint64_t phys_map_end;

/*
 * Set up the frame allocator, the kernel page tables (and switch to them),
 * guarded interrupt stacks for the boot CPU and the TLB shootdown.  kmain
 * calls it after the ACPI tables are read and before the APs start.
 */
void mm_init(void);

/*
 * Boot-time allocator: page-aligned (or `align`-aligned), zeroed, never
 * freed.  Before mm_init it carves the usable regions of the multiboot2
 * memory map below 4 GiB; afterwards it takes its memory from the frame
 * allocator.  The result is a direct-map address.
 */
void early_alloc_init(void);
void *early_alloc(size_t size, size_t align);
/* A page-aligned physical page below 1 MiB, for the AP trampoline. */
uint64_t early_alloc_low_page(void);

/* ---- Physical frames (4 KiB), with per-CPU caches.  0 is never a frame. */

/* A frame's physical address, contents undefined; 0 when memory is out. */
uint64_t frame_alloc(void);
uint64_t frame_alloc_zeroed(void);
void frame_free(uint64_t pa);
/*
 * Free a frame that was mapped until a TLB shootdown returned `ticket`
 * (tlb.h): it is held back until every CPU that may still translate to it
 * has flushed.  A ticket of 0 (a synchronous shootdown) frees at once.
 */
void frame_free_after(uint64_t pa, uint64_t ticket);
/* `npages` physically contiguous frames in [min_pa, max_pa), `align`-aligned; 0 if none. */
uint64_t frame_alloc_contig(size_t npages, uint64_t align, uint64_t min_pa, uint64_t max_pa);
void frame_free_contig(uint64_t pa, size_t npages);
/* Give held-back frames whose shootdown has completed to the allocator; how many. */
size_t frame_reclaim(void);

struct frame_stats {
	uint64_t total;    /* frames the allocator manages */
	uint64_t free;     /* free, per-CPU caches included */
	uint64_t deferred; /* freed, waiting for a lazy shootdown */
	uint64_t above_4g; /* managed frames at or above 4 GiB */
	uint64_t deferred_total, reclaimed_total;
};
void frame_stats(struct frame_stats *out);
/* Whether `pa` is free in the allocator (per-CPU caches included); for tests. */
bool frame_is_free(uint64_t pa);

/* ---- Kernel page tables. */

#define VM_WRITE (1u << 0)
#define VM_EXEC (1u << 1)
#define VM_UNCACHED (1u << 2) /* PCD|PWT: MMIO */
#define VM_GLOBAL (1u << 3)   /* survives CR3 reloads: only for mappings that never change */
#define VM_4K (1u << 4)       /* no 2 MiB pages even where alignment allows */
#define VM_REPLACE (1u << 5)  /* vm_map may overwrite a present mapping (atomically) */

/*
 * Map [va, va+len) to [pa, pa+len): 2 MiB pages where both are 2 MiB
 * aligned (unless VM_4K), 4 KiB elsewhere; readable always, NX unless
 * VM_EXEC.  New mappings need no flush; with VM_REPLACE the caller flushes.
 * -1 if a page is already mapped (without VM_REPLACE), the range is
 * misaligned, outside the kernel's mappable areas, or page tables run out.
 */
int vm_map(uint64_t va, uint64_t pa, size_t len, unsigned flags);
/* Unmap (splitting 2 MiB pages as needed).  The caller then flushes the TLBs. */
int vm_unmap(uint64_t va, size_t len);
/* New protection for mapped pages (splitting as needed); the caller flushes. */
int vm_protect(uint64_t va, size_t len, unsigned flags);
/* Physical address behind `va`, or ~0 if unmapped; *page_size gets 4K, 2M or 1G. */
uint64_t vm_translate(uint64_t va, uint64_t *page_size);
/* The raw leaf entry behind `va` (0 if unmapped), for tests of the bits. */
uint64_t vm_pte(uint64_t va);
/* `va` is mapped in the kernel tables (safe to read). */
bool mm_addr_mapped(uint64_t va);
/* Physical address of the kernel's top-level table (what APs load into CR3). */
uint64_t mm_kernel_cr3(void);

/* Unmapped virtual space in the VMAP area, page-aligned; 0 if none. */
uint64_t vm_area_alloc(size_t len, uint64_t align);
void vm_area_free(uint64_t va, size_t len);

/*
 * Kernel stacks: `size` bytes (rounded up to pages) of zeroed, mapped memory
 * with an unmapped guard page below, so an overflow faults instead of
 * corrupting its neighbour.  Returns the lowest usable address; the stack's
 * top (the initial stack pointer) is base + size.  kstack_free takes that
 * same base (not from the stack being freed); its pages are reused only
 * once every CPU has flushed them.  Callable with interrupts on or off, not
 * from NMI.  NULL when memory is out.
 */
#define KSTACK_DEFAULT_SIZE (16 * 1024)
void *kstack_alloc(size_t size);
void kstack_free(void *base);

/*
 * The kmap window: temporary mappings of any frame, a pool of KMAP_SLOTS
 * pages under one lock (Linux's highmem pkmap).  A freed slot keeps its
 * translation until the pool runs out; then every unused slot is cleared
 * and the window shot down (flush_tlb_range, in the default mode) with the
 * lock held.  kmap must be called with interrupts enabled (a synchronous
 * shootdown under the lock would otherwise deadlock against a CPU spinning
 * on it with interrupts off).  The address is for this CPU: another CPU
 * given it must pass a lazy-flush point (tlb.h) first.
 */
void *kmap(uint64_t pa);
void kunmap(void *va);
/* Recycle the pool now (clear unused slots, shoot the window down). */
void kmap_flush_unused(void);

struct kmap_stats {
	uint64_t maps, recycles;
};
void kmap_stats(struct kmap_stats *out);

#endif
