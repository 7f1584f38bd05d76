/* Kernel address-space constants and physical<->virtual conversion. */
#ifndef LOCKLAB_MM_H
#define LOCKLAB_MM_H

#include "types.h"

#define PAGE_SIZE 4096ull
#define LARGE_PAGE_SIZE (2ull << 20)
#define KERNEL_VMA 0xffffffff80000000ull
/* All physical memory is mapped here (the early tables cover 0..4 GiB). */
#define PHYS_MAP_BASE 0xffff800000000000ull
#define EARLY_PHYS_LIMIT (4ull << 30)

static inline void *phys_to_virt(uint64_t pa)
{
	return (void *)(pa + PHYS_MAP_BASE);
}

static inline uint64_t virt_to_phys(const void *va)
{
	uint64_t v = (uint64_t)va;
	return v >= KERNEL_VMA ? v - KERNEL_VMA : v - PHYS_MAP_BASE;
}

extern char _kernel_start[], _kernel_end[], _text[], _etext[];
extern char __percpu_start[], __percpu_end[];

/*
 * Boot-time allocator: carves page-aligned, zeroed memory out of the usable
 * regions of the multiboot2 memory map (below 4 GiB, clear of the kernel,
 * the boot information and the low 1 MiB).  Never freed.
 */
void early_alloc_init(void);
void *early_alloc(size_t size, size_t align);
/* A page-aligned physical page below 1 MiB, for the AP trampoline. */
uint64_t early_alloc_low_page(void);

#endif
