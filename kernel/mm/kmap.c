/*
 * The kmap window: KMAP_SLOTS pages of temporary mappings under one lock,
 * after Linux 2.4's highmem kmap (the scenario of M. Hemment's note on
 * flush_tlb_all, 2001).
 *
 * slot_count[i]: 0 free and clean (no CPU can hold a translation for it);
 * 1 free but dirty (its entry still maps the last frame, which CPUs may
 * have cached); n > 1 in use (n - 1 users).  kunmap leaves the entry in
 * place, so unmapping costs no flush.  When no clean slot is left, the pool
 * is recycled: every dirty slot's entry is cleared and the window is shot
 * down once, with the lock held: synchronously, the lock holder waits for
 * every CPU that ever used the window, and a CPU with interrupts off
 * delays every kmap caller behind the lock; lazily, it does not wait, and
 * each CPU catches up before it next uses the window (tlb_kmap_hook, after
 * taking the lock, so it sees every recycle made before).
 *
 * kmap needs interrupts on: with a synchronous recycle under the lock, a
 * CPU spinning for the lock with interrupts off could never acknowledge it.
 */
#include "irq.h"
#include "kernel.h"
#include "mm.h"
#include "mm/internal.h"
#include "tlb.h"

static DEFINE_SPINLOCK(kmap_lock);
static int slot_count[KMAP_SLOTS];
static unsigned next_slot;
static uint64_t *kmap_ptes; /* the window's page table (direct-map address) */
static struct tlb_domain kmap_domain;
static struct kmap_stats stats;

static void recycle(void)
{
	for (int i = 0; i < KMAP_SLOTS; i++) {
		if (slot_count[i] == 1) {
			WRITE_ONCE(kmap_ptes[i], 0);
			slot_count[i] = 0;
		}
	}
	stats.recycles++;
	flush_tlb_range(KMAP_BASE, KMAP_END);
}

void *kmap(uint64_t pa)
{
	if (irqs_disabled())
		panic("kmap with interrupts disabled");
	if (pa & (PAGE_SIZE - 1))
		panic("kmap: %#lx is not a frame address", pa);
	tlb_domain_enter(&kmap_domain);
	spin_lock(&kmap_lock);
	int slot = -1;
	for (int pass = 0; slot < 0; pass++) {
		for (int k = 0; k < KMAP_SLOTS; k++) {
			unsigned i = (next_slot + (unsigned)k) % KMAP_SLOTS;
			if (slot_count[i] == 0) {
				slot = (int)i;
				break;
			}
		}
		if (slot < 0) {
			if (pass > 0)
				panic("kmap: all %d slots in use", KMAP_SLOTS);
			recycle();
		}
	}
	next_slot = (unsigned)slot + 1;
	slot_count[slot] = 2;
	WRITE_ONCE(kmap_ptes[slot], pa | PTE_P | PTE_W | PTE_A | PTE_D | (cpu_has_nx ? PTE_NX : 0));
	stats.maps++;
	spin_unlock(&kmap_lock);
	/* Recycles by other CPUs raised our `want` before they dropped the lock. */
	tlb_kmap_hook();
	return (void *)(KMAP_BASE + (uint64_t)slot * PAGE_SIZE);
}

void kunmap(void *va)
{
	uint64_t v = (uint64_t)va;
	unsigned slot = (unsigned)((v - KMAP_BASE) / PAGE_SIZE);

	if (v < KMAP_BASE || v >= KMAP_END)
		panic("kunmap: %p is not in the kmap window", va);
	spin_lock(&kmap_lock);
	if (slot_count[slot] < 2)
		panic("kunmap: slot %u is not mapped", slot);
	slot_count[slot]--;
	spin_unlock(&kmap_lock);
}

void kmap_flush_unused(void)
{
	spin_lock(&kmap_lock);
	recycle();
	spin_unlock(&kmap_lock);
}

void kmap_stats(struct kmap_stats *out)
{
	spin_lock(&kmap_lock);
	*out = stats;
	spin_unlock(&kmap_lock);
}

void kmap_init(void)
{
	/* The window's page table exists from the start: kmap never allocates. */
	if (vm_map(KMAP_BASE, 0x100000, PAGE_SIZE, VM_4K) < 0 || vm_unmap(KMAP_BASE, PAGE_SIZE) < 0)
		panic("kmap: cannot set up the window");
	uint64_t *pml4 = phys_to_virt(mm_kernel_cr3());
	uint64_t *pdpt = phys_to_virt(pml4[(KMAP_BASE >> 39) & 511] & PTE_ADDR);
	uint64_t *pd = phys_to_virt(pdpt[(KMAP_BASE >> 30) & 511] & PTE_ADDR);
	kmap_ptes = phys_to_virt(pd[(KMAP_BASE >> 21) & 511] & PTE_ADDR);
	tlb_domain_register(&kmap_domain, "kmap", KMAP_BASE, KMAP_END);
}
