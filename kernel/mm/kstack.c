/*
 * Kernel stacks in the VMAP area: [guard][stack pages], the guard page
 * never mapped, so running off the bottom of a stack faults (and, the fault
 * handler having no stack left, ends in the double-fault handler on its own
 * IST stack, which reports it).  The pages above a stack are the next
 * allocation's guard or unused.
 *
 * The guard page's not-present entry keeps the stack's size (a marker with
 * a magic number), so kstack_free needs only the base.  Freeing unmaps the
 * pages and shoots them down lazily (it may run with interrupts off, or
 * under a lock other CPUs spin on); the frames and the address range are
 * reused only after every CPU has flushed (tlb.c, rule 6).
 */
#include "kernel.h"
#include "mm.h"
#include "mm/internal.h"
#include "tlb.h"

#define KSTACK_MAGIC 0x4b5354ull /* "KST" */
#define KSTACK_MAX_PAGES (1u << 16)

static inline uint64_t marker(uint64_t npages)
{
	return KSTACK_MAGIC << 32 | npages;
}

void *kstack_alloc(size_t size)
{
	uint64_t n = ALIGN_UP(size ? size : PAGE_SIZE, PAGE_SIZE) / PAGE_SIZE;

	if (n > KSTACK_MAX_PAGES || !mm_kernel_cr3())
		return NULL;
	uint64_t va = vm_area_alloc((n + 1) * PAGE_SIZE, PAGE_SIZE);
	if (!va)
		return NULL;
	uint64_t base = va + PAGE_SIZE;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t pa = frame_alloc_zeroed();
		if (!pa || vm_map(base + i * PAGE_SIZE, pa, PAGE_SIZE, VM_WRITE | VM_4K) < 0) {
			if (pa)
				frame_free(pa);
			/* Never used: nothing to flush anywhere. */
			for (uint64_t j = 0; j < i; j++)
				frame_free(vm_translate(base + j * PAGE_SIZE, NULL));
			vm_unmap(base, i * PAGE_SIZE);
			flush_tlb_range_mode(base, base + i * PAGE_SIZE, TLB_LAZY);
			vm_area_release(va, n + 1);
			return NULL;
		}
	}
	if (vm_set_marker(va, marker(n)) < 0)
		panic("kstack_alloc: guard page at %#lx is mapped", va);
	return (void *)base;
}

void kstack_free(void *stack)
{
	uint64_t base = (uint64_t)stack, va = base - PAGE_SIZE;
	uint64_t m = vm_get_marker(va);
	uint64_t n = m & 0xffffffffull;

	if (base & (PAGE_SIZE - 1) || m >> 32 != KSTACK_MAGIC || n == 0 || n > KSTACK_MAX_PAGES)
		panic("kstack_free: %p is not a kernel stack", stack);
	uint64_t frames[64];
	for (uint64_t done = 0; done < n;) {
		uint64_t k = n - done < 64 ? n - done : 64;
		for (uint64_t i = 0; i < k; i++)
			frames[i] = vm_translate(base + (done + i) * PAGE_SIZE, NULL);
		vm_unmap(base + done * PAGE_SIZE, k * PAGE_SIZE);
		uint64_t ticket = flush_tlb_range_mode(base + done * PAGE_SIZE,
		                                       base + (done + k) * PAGE_SIZE, TLB_LAZY);
		for (uint64_t i = 0; i < k; i++)
			frame_free_after(frames[i], ticket);
		done += k;
		if (done == n) {
			vm_set_marker(va, 0);
			mm_defer(va, (uint32_t)(n + 1), DEFER_VRANGE, ticket);
		}
	}
}
