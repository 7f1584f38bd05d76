/*
 * The physical frame allocator.
 *
 * One bit per 4 KiB frame up to the end of the highest usable region (set:
 * free), under one lock, and in front of it a small cache of free frames
 * per CPU, so the common frame_alloc/frame_free touch only this CPU's cache
 * with interrupts off; the global lock is taken once per PCP_BATCH frames.
 *
 * Kept out, from the multiboot2 memory map: everything not usable, the
 * first 1 MiB (real-mode structures and the AP trampoline page), the kernel
 * image, the boot information, the ACPI tables and whatever the boot
 * allocator (early.c) handed out before the hand-over.
 *
 * Frames freed while a lazy TLB shootdown is outstanding (frame_free_after)
 * wait in the deferred list, tagged with the shootdown's generation, until
 * every CPU that may still hold a translation to them has flushed
 * (tlb_completed_gen); until then no CPU can be handed the frame, so no
 * stale translation can read another owner's data or write into it.
 */
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "mm.h"
#include "mm/internal.h"
#include "multiboot.h"
#include "smp.h"
#include "tlb.h"

#define LOW_MEMORY_END 0x100000ull
#define PCP_MAX 64
#define PCP_BATCH 32
/* Held-back frames; past this the freeing CPU waits for the shootdown instead. */
#define DEFER_MAX 4096

struct pcp {
	int count;
	uint64_t frames[PCP_MAX];
} __cacheline_aligned;

struct deferred {
	uint64_t addr;
	uint64_t gen;
	uint32_t npages;
	uint32_t kind; /* DEFER_FRAME or DEFER_VRANGE */
};

static DEFINE_RAW_SPINLOCK(frame_lock);
static uint64_t *free_bits;
static uint64_t nframes, nwords;
static uint64_t search_word;
static uint64_t bitmap_free, total_frames, above_4g;
static struct pcp pcps[MAX_CPUS];
static bool frames_ready;

static DEFINE_RAW_SPINLOCK(defer_lock);
static struct deferred deferred[DEFER_MAX];
static int ndeferred;
static uint64_t deferred_total, reclaimed_total;

static inline bool bit_test(uint64_t pfn)
{
	return (free_bits[pfn / 64] >> (pfn % 64)) & 1;
}

static inline void bit_set(uint64_t pfn)
{
	free_bits[pfn / 64] |= 1ull << (pfn % 64);
}

static inline void bit_clear(uint64_t pfn)
{
	free_bits[pfn / 64] &= ~(1ull << (pfn % 64));
}

static void mark_range(uint64_t start, uint64_t end, bool free)
{
	uint64_t s = ALIGN_UP(start, PAGE_SIZE) / PAGE_SIZE;
	uint64_t e = ALIGN_DOWN(end, PAGE_SIZE) / PAGE_SIZE;

	if (e > nframes)
		e = nframes;
	while (s < e) { /* a word at a time: boot time grows with RAM */
		uint64_t bit = s % 64, n = 64 - bit < e - s ? 64 - bit : e - s;
		uint64_t mask = (n == 64 ? ~0ull : (1ull << n) - 1) << bit;
		uint64_t old = free_bits[s / 64], now = free ? old | mask : old & ~mask;
		bitmap_free = bitmap_free + (uint64_t)popcount64(now) - (uint64_t)popcount64(old);
		free_bits[s / 64] = now;
		s += n;
	}
}

/* Keep [pa, pa+len) out of the allocator (whole frames it touches). */
void frame_reserve(uint64_t pa, uint64_t len)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&frame_lock, flags);
	mark_range(ALIGN_DOWN(pa, PAGE_SIZE), ALIGN_UP(pa + len, PAGE_SIZE), false);
	raw_spin_unlock_irqrestore(&frame_lock, flags);
}

void frame_init(void)
{
	uint64_t top = 0;

	for (int i = 0; i < boot_info.mmap_count; i++) {
		const struct mmap_entry *e = &boot_info.mmap[i];
		uint64_t end = ALIGN_DOWN(e->base + e->length, PAGE_SIZE);
		if (e->type == MMAP_USABLE && end > top)
			top = end;
	}
	if (top > PHYS_MAP_MAX)
		top = PHYS_MAP_MAX;
	nframes = top / PAGE_SIZE;
	nwords = (nframes + 63) / 64;
	free_bits = early_alloc(nwords * sizeof(uint64_t), PAGE_SIZE);

	/* Usable memory first, then punch out everything that is not free. */
	for (int i = 0; i < boot_info.mmap_count; i++) {
		const struct mmap_entry *e = &boot_info.mmap[i];
		if (e->type == MMAP_USABLE)
			mark_range(e->base, e->base + e->length, true);
	}
	for (int i = 0; i < boot_info.mmap_count; i++) {
		const struct mmap_entry *e = &boot_info.mmap[i];
		if (e->type != MMAP_USABLE)
			mark_range(ALIGN_DOWN(e->base, PAGE_SIZE),
			           ALIGN_UP(e->base + e->length, PAGE_SIZE), false);
	}
	mark_range(0, LOW_MEMORY_END, false);
	mark_range(LOW_MEMORY_END, ALIGN_UP(virt_to_phys(_kernel_end), PAGE_SIZE), false);
	mark_range(ALIGN_DOWN(boot_info.mbi_phys, PAGE_SIZE),
	           ALIGN_UP(boot_info.mbi_phys + boot_info.mbi_size, PAGE_SIZE), false);

	/* What the boot allocator used: every region before its current one, and that one's start.
	 */
	int region;
	uint64_t next;
	early_alloc_highwater(&region, &next);
	for (int i = 0; i < boot_info.mmap_count && i <= region; i++) {
		const struct mmap_entry *e = &boot_info.mmap[i];
		if (e->type != MMAP_USABLE || e->base >= EARLY_PHYS_LIMIT)
			continue;
		uint64_t end = e->base + e->length;
		if (end > EARLY_PHYS_LIMIT)
			end = EARLY_PHYS_LIMIT;
		if (i == region)
			end = next > e->base ? next : e->base;
		mark_range(ALIGN_DOWN(e->base, PAGE_SIZE), ALIGN_UP(end, PAGE_SIZE), false);
	}

	total_frames = bitmap_free;
	for (uint64_t w = EARLY_PHYS_LIMIT / PAGE_SIZE / 64; w < nwords; w++)
		above_4g += (uint64_t)popcount64(free_bits[w]);
	frames_ready = true;
	early_alloc_handoff();
}

/* Up to `want` frames from the bitmap into `out`; frame_lock held. */
static int take_frames(uint64_t *out, int want)
{
	int got = 0;

	for (uint64_t scanned = 0; got < want && scanned < nwords; scanned++) {
		uint64_t w = search_word;
		while (free_bits[w] && got < want) {
			int bit = __builtin_ctzll(free_bits[w]);
			free_bits[w] &= free_bits[w] - 1;
			out[got++] = (w * 64 + (uint64_t)bit) * PAGE_SIZE;
		}
		if (got < want)
			search_word = search_word + 1 < nwords ? search_word + 1 : 0;
	}
	bitmap_free -= (uint64_t)got;
	return got;
}

static void give_frames(const uint64_t *in, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t pfn = in[i] / PAGE_SIZE;
		if (pfn >= nframes || bit_test(pfn))
			panic("frame_free: %#lx is %s", in[i],
			      pfn >= nframes ? "not a managed frame" : "already free");
		bit_set(pfn);
	}
	bitmap_free += (uint64_t)n;
}

uint64_t frame_alloc(void)
{
	unsigned long flags = local_irq_save();
	struct pcp *p = &pcps[smp_processor_id()];
	uint64_t pa = 0;

	if (p->count == 0) {
		if (ndeferred)
			frame_reclaim();
		raw_spin_lock(&frame_lock);
		p->count = take_frames(p->frames, PCP_BATCH);
		raw_spin_unlock(&frame_lock);
	}
	if (p->count)
		pa = p->frames[--p->count];
	local_irq_restore(flags);
	return pa;
}

uint64_t frame_alloc_zeroed(void)
{
	uint64_t pa = frame_alloc();
	if (pa)
		memset(phys_to_virt(pa), 0, PAGE_SIZE);
	return pa;
}

void frame_free(uint64_t pa)
{
	if (pa & (PAGE_SIZE - 1) || pa / PAGE_SIZE >= nframes || pa < LOW_MEMORY_END)
		panic("frame_free: %#lx is not a managed frame", pa);
	unsigned long flags = local_irq_save();
	struct pcp *p = &pcps[smp_processor_id()];
	if (p->count == PCP_MAX) {
		raw_spin_lock(&frame_lock);
		give_frames(p->frames + PCP_MAX - PCP_BATCH, PCP_BATCH);
		raw_spin_unlock(&frame_lock);
		p->count -= PCP_BATCH;
	}
	p->frames[p->count++] = pa;
	local_irq_restore(flags);
}

uint64_t frame_alloc_contig(size_t npages, uint64_t align, uint64_t min_pa, uint64_t max_pa)
{
	uint64_t step = align > PAGE_SIZE ? align / PAGE_SIZE : 1;
	uint64_t first = ALIGN_UP(min_pa / PAGE_SIZE, step);
	uint64_t limit = max_pa / PAGE_SIZE < nframes ? max_pa / PAGE_SIZE : nframes;
	unsigned long flags;
	uint64_t found = 0;

	if (npages == 0)
		return 0;
	raw_spin_lock_irqsave(&frame_lock, flags);
	for (uint64_t pfn = first; pfn + npages <= limit; pfn += step) {
		if (!free_bits[pfn / 64] && step == 1) { /* an empty word: skip it whole */
			pfn = ALIGN_UP(pfn + 1, 64) - 1;
			continue;
		}
		size_t n = 0;
		while (n < npages && bit_test(pfn + n))
			n++;
		if (n == npages) {
			for (size_t i = 0; i < npages; i++)
				bit_clear(pfn + i);
			bitmap_free -= npages;
			found = pfn * PAGE_SIZE;
			break;
		}
		if (step == 1)
			pfn += n; /* the run broke at pfn + n */
	}
	raw_spin_unlock_irqrestore(&frame_lock, flags);
	return found;
}

void frame_free_contig(uint64_t pa, size_t npages)
{
	unsigned long flags;
	uint64_t one;

	raw_spin_lock_irqsave(&frame_lock, flags);
	for (size_t i = 0; i < npages; i++) {
		one = pa + i * PAGE_SIZE;
		give_frames(&one, 1);
	}
	raw_spin_unlock_irqrestore(&frame_lock, flags);
}

/* ---- Frames (and VMAP ranges) held back for a lazy shootdown. */

static void release(const struct deferred *d)
{
	if (d->kind == DEFER_VRANGE) {
		vm_area_release(d->addr, d->npages);
		return;
	}
	unsigned long flags;
	raw_spin_lock_irqsave(&frame_lock, flags);
	for (uint32_t i = 0; i < d->npages; i++) {
		uint64_t one = d->addr + i * PAGE_SIZE;
		give_frames(&one, 1);
	}
	raw_spin_unlock_irqrestore(&frame_lock, flags);
}

/* Hold `addr` back until generation `gen` is complete everywhere. */
void mm_defer(uint64_t addr, uint32_t npages, uint32_t kind, uint64_t gen)
{
	unsigned long flags;

	if (!gen || tlb_debug_no_defer || tlb_gen_done(gen)) {
		release(&(struct deferred){addr, gen, npages, kind});
		return;
	}
	raw_spin_lock_irqsave(&defer_lock, flags);
	if (ndeferred < DEFER_MAX) {
		deferred[ndeferred++] = (struct deferred){addr, gen, npages, kind};
		deferred_total++;
		raw_spin_unlock_irqrestore(&defer_lock, flags);
		return;
	}
	raw_spin_unlock_irqrestore(&defer_lock, flags);
	/* The list is full: wait for this shootdown rather than lose track. */
	tlb_ticket_wait(gen);
	release(&(struct deferred){addr, gen, npages, kind});
}

void frame_free_after(uint64_t pa, uint64_t ticket)
{
	if (pa & (PAGE_SIZE - 1) || pa / PAGE_SIZE >= nframes || pa < LOW_MEMORY_END)
		panic("frame_free_after: %#lx is not a managed frame", pa);
	if (!ticket || tlb_debug_no_defer) {
		frame_free(pa);
		return;
	}
	mm_defer(pa, 1, DEFER_FRAME, ticket);
}

size_t frame_reclaim(void)
{
	struct deferred batch[32];
	size_t total = 0;
	unsigned long flags;

	for (;;) {
		int n = 0;
		uint64_t oldest = 0;
		raw_spin_lock_irqsave(&defer_lock, flags);
		for (int i = 0; i < ndeferred && n < (int)ARRAY_SIZE(batch);) {
			if (tlb_gen_done(deferred[i].gen)) {
				batch[n++] = deferred[i];
				deferred[i] = deferred[--ndeferred];
			} else {
				if (!oldest || deferred[i].gen < oldest)
					oldest = deferred[i].gen;
				i++;
			}
		}
		reclaimed_total += (uint64_t)n;
		raw_spin_unlock_irqrestore(&defer_lock, flags);
		for (int i = 0; i < n; i++)
			release(&batch[i]);
		total += (size_t)n;
		if (n < (int)ARRAY_SIZE(batch)) {
			/* CPUs still behind (never targeted, or interrupts off): make them catch
			 * up. */
			if (oldest)
				tlb_nudge(oldest);
			return total;
		}
	}
}

void frame_stats(struct frame_stats *out)
{
	unsigned long flags;
	uint64_t cached = 0, held = 0;

	for (int c = 0; c < MAX_CPUS; c++)
		cached += (uint64_t)__atomic_load_n(&pcps[c].count, __ATOMIC_RELAXED);
	raw_spin_lock_irqsave(&defer_lock, flags);
	for (int i = 0; i < ndeferred; i++)
		if (deferred[i].kind == DEFER_FRAME)
			held += deferred[i].npages;
	out->deferred_total = deferred_total;
	out->reclaimed_total = reclaimed_total;
	raw_spin_unlock_irqrestore(&defer_lock, flags);
	raw_spin_lock_irqsave(&frame_lock, flags);
	out->free = bitmap_free + cached;
	raw_spin_unlock_irqrestore(&frame_lock, flags);
	out->total = total_frames;
	out->deferred = held;
	out->above_4g = above_4g;
}

bool frame_is_free(uint64_t pa)
{
	uint64_t pfn = pa / PAGE_SIZE;

	if (!frames_ready || pfn >= nframes)
		return false;
	if (__atomic_load_n(&free_bits[pfn / 64], __ATOMIC_RELAXED) >> (pfn % 64) & 1)
		return true;
	for (int c = 0; c < MAX_CPUS; c++) {
		struct pcp *p = &pcps[c];
		for (int i = 0; i < p->count && i < PCP_MAX; i++)
			if (p->frames[i] == pa)
				return true;
	}
	return false;
}
