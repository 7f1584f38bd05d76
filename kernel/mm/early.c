/*
 * The boot-time allocator: a bump pointer over the usable regions of the
 * multiboot2 memory map.  It serves the per-CPU areas, histograms and the
 * trampoline page before the real frame allocator exists.  It stays below
 * EARLY_PHYS_LIMIT because only that much is mapped by the early tables,
 * and it keeps clear of the kernel image, the boot information (which holds
 * the command line and RSDP copies we still read) and the first 1 MiB.
 *
 * Hand-over: mm_init reads the high-water mark (everything before it is
 * in use or lost to alignment) and starts the frame allocator above it;
 * from then on early_alloc takes whole frames from the frame allocator
 * (small requests share a chunk), so the two never hand out the same page.
 */
#include "irq.h"
#include "kernel.h"
#include "mm.h"
#include "mm/internal.h"
#include "multiboot.h"

#define LOW_MEMORY_END 0x100000ull
#define TRAMPOLINE_MIN 0x1000ull  /* keep the real-mode IVT/BDA page */
#define TRAMPOLINE_MAX 0x9f000ull /* below the EBDA */

static int region = -1; /* index into boot_info.mmap */
static uint64_t next;   /* next free physical address in that region */
static uint64_t low_page_next = TRAMPOLINE_MIN;

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* The lowest address >= pa at which [pa, pa+size) avoids what must be kept. */
static uint64_t skip_reserved(uint64_t pa, uint64_t size, uint64_t align)
{
	uint64_t kstart = 0x100000, kend = virt_to_phys(_kernel_end);
	uint64_t mbi = ALIGN_DOWN(boot_info.mbi_phys, PAGE_SIZE);
	uint64_t mbi_len = ALIGN_UP(boot_info.mbi_phys + boot_info.mbi_size, PAGE_SIZE) - mbi;
	bool moved;

	do {
		moved = false;
		pa = ALIGN_UP(pa, align);
		if (pa < LOW_MEMORY_END) {
			pa = LOW_MEMORY_END;
			moved = true;
		}
		if (overlaps(pa, size, kstart, kend - kstart)) {
			pa = kend;
			moved = true;
		}
		if (overlaps(pa, size, mbi, mbi_len)) {
			pa = mbi + mbi_len;
			moved = true;
		}
	} while (moved);
	return pa;
}

void early_alloc_init(void)
{
	region = 0;
	next = 0;
}

/* Callers may run on several CPUs once the APs are up. */
static volatile int early_lock;

static void early_lock_take(unsigned long *flags)
{
	*flags = local_irq_save();
	while (__atomic_exchange_n(&early_lock, 1, __ATOMIC_ACQUIRE))
		cpu_relax();
}

static void early_lock_drop(unsigned long flags)
{
	__atomic_store_n(&early_lock, 0, __ATOMIC_RELEASE);
	local_irq_restore(flags);
}

static void *early_alloc_locked(size_t size, size_t align);
static void *late_alloc_locked(size_t size, size_t align);

/* After the hand-over: small requests are carved from chunks of this size. */
#define LATE_CHUNK (64 * 1024)
static bool handed_over;
static uint8_t *chunk;
static size_t chunk_left;

void *early_alloc(size_t size, size_t align)
{
	unsigned long flags;

	early_lock_take(&flags);
	void *p = handed_over ? late_alloc_locked(size, align) : early_alloc_locked(size, align);
	early_lock_drop(flags);
	return p;
}

void early_alloc_highwater(int *out_region, uint64_t *out_next)
{
	*out_region = region;
	*out_next = next;
}

void early_alloc_handoff(void)
{
	handed_over = true;
}

static void *late_alloc_locked(size_t size, size_t align)
{
	if (align < 16)
		align = 16;
	if (size >= PAGE_SIZE / 2 || align > PAGE_SIZE) {
		size_t n = ALIGN_UP(size, PAGE_SIZE) / PAGE_SIZE;
		uint64_t pa =
		    frame_alloc_contig(n, align > PAGE_SIZE ? align : PAGE_SIZE, 0, ~0ull);
		if (!pa)
			panic("early_alloc: out of memory for %zu bytes", size);
		void *va = phys_to_virt(pa);
		memset(va, 0, n * PAGE_SIZE);
		return va;
	}
	uint64_t at = ALIGN_UP((uint64_t)chunk, align);
	if (!chunk || at + size > (uint64_t)chunk + chunk_left) {
		uint64_t pa = frame_alloc_contig(LATE_CHUNK / PAGE_SIZE, PAGE_SIZE, 0, ~0ull);
		if (!pa)
			panic("early_alloc: out of memory for %zu bytes", size);
		chunk = phys_to_virt(pa);
		chunk_left = LATE_CHUNK;
		memset(chunk, 0, LATE_CHUNK);
		at = (uint64_t)chunk;
	}
	chunk_left -= at + size - (uint64_t)chunk;
	chunk = (uint8_t *)(at + size);
	return (void *)at;
}

static void *early_alloc_locked(size_t size, size_t align)
{
	if (align < 16)
		align = 16;
	for (; region >= 0 && region < boot_info.mmap_count; region++, next = 0) {
		const struct mmap_entry *e = &boot_info.mmap[region];
		if (e->type != MMAP_USABLE)
			continue;
		uint64_t start = next > e->base ? next : e->base;
		uint64_t end = e->base + e->length;
		if (end > EARLY_PHYS_LIMIT)
			end = EARLY_PHYS_LIMIT;
		uint64_t pa = skip_reserved(start, size, align);
		if (pa + size <= end) {
			next = pa + size;
			void *va = phys_to_virt(pa);
			memset(va, 0, size);
			return va;
		}
	}
	panic("early_alloc: out of memory for %zu bytes", size);
}

uint64_t early_alloc_low_page(void)
{
	for (; low_page_next < TRAMPOLINE_MAX; low_page_next += PAGE_SIZE) {
		for (int i = 0; i < boot_info.mmap_count; i++) {
			const struct mmap_entry *e = &boot_info.mmap[i];
			if (e->type == MMAP_USABLE && e->base <= low_page_next &&
			    low_page_next + PAGE_SIZE <= e->base + e->length &&
			    !overlaps(low_page_next, PAGE_SIZE, boot_info.mbi_phys,
			              boot_info.mbi_size)) {
				uint64_t pa = low_page_next;
				low_page_next += PAGE_SIZE;
				return pa;
			}
		}
	}
	panic("no usable page below 1 MiB for the AP trampoline");
}
