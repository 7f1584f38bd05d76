/* Shared by the files of kernel/mm/ and nobody else. */
#ifndef LOCKLAB_MM_INTERNAL_H
#define LOCKLAB_MM_INTERNAL_H

#include "mm.h"
#include "types.h"
#include "x86.h"

/* kernel/lock/arch_kernel.h defines its own cpu_relax (the same PAUSE). */
#define cpu_relax lock_arch_cpu_relax
#include "lock/spinlock.h"
#undef cpu_relax

/* Page-table entry bits (Intel SDM vol. 3, 4.5). */
#define PTE_P (1ull << 0)
#define PTE_W (1ull << 1)
#define PTE_PWT (1ull << 3)
#define PTE_PCD (1ull << 4)
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)
#define PTE_PS (1ull << 7)
#define PTE_G (1ull << 8)
#define PTE_NX (1ull << 63)
#define PTE_ADDR 0x000ffffffffff000ull
#define PTE_ADDR_2M 0x000fffffffe00000ull
#define PTE_ADDR_1G 0x000fffffc0000000ull

#define CR4_PGE (1ull << 7)

/* CPU features found by mm_init. */
extern bool cpu_has_nx, cpu_has_pge, cpu_has_1g;

/* early.c: where the boot allocator stopped, and the switch to frames. */
void early_alloc_highwater(int *region, uint64_t *next);
void early_alloc_handoff(void);

/* frame.c */
void frame_init(void);
void frame_reserve(uint64_t pa, uint64_t len);
/* tlb.c */
bool tlb_gen_done(uint64_t gen);
void tlb_nudge(uint64_t gen);

/* paging.c */
void paging_init(void);
/* Lockless walk: the leaf entry for va (NULL if none); *level 1 (4K), 2 (2M) or 3 (1G). */
uint64_t *pte_walk(uint64_t va, int *level);

int vm_set_marker(uint64_t va, uint64_t value);
uint64_t vm_get_marker(uint64_t va);
void vm_area_release(uint64_t va, size_t npages);

/* frame.c: hold a frame run or a VMAP range back until generation `gen` is complete. */
#define DEFER_FRAME 0
#define DEFER_VRANGE 1
void mm_defer(uint64_t addr, uint32_t npages, uint32_t kind, uint64_t gen);
/* tlb.c */
uint64_t tlb_completed_gen(void);
void tlb_kmap_hook(void);

/* kstack.c, kmap.c */
void kstack_init(void);
void kmap_init(void);

#endif
