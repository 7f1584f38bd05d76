/*
 * The `tlb` suite: TLB shootdown, synchronous and lazy (tlb.h, the rules at
 * the top of kernel/mm/tlb.c).  This file has the helpers the suite shares
 * (tlb_tests.h) and the tests of what a CPU may still read after a
 * shootdown; tlb_tests_targets.c and then tlb_tests_timing.c have the
 * rest.  The harness runs a suite's tests in file-name order, so those
 * names must keep sorting after this one, and in that order.
 *
 * Under QEMU's TCG every vCPU keeps its own software TLB and never snoops
 * page-table writes, so a missing invalidation really leaves a CPU reading
 * the old frame: the checks below see it (the XFAIL tests prove they can).
 *
 *   stale_sync / stale_lazy   one CPU remaps a page from one frame to
 *                             another and shoots it down; every other CPU,
 *                             once the mode's completion rule is met (sync:
 *                             the initiator returned; lazy: it then passed
 *                             local_irq_enable), must read the new frame.
 *                             Many rounds, random initiator, random
 *                             interrupt-off sections, from `seed`.
 *   stale_skipped_flush       the same with targets that acknowledge without
 *                             flushing: must fail (XFAIL).
 *   lazy_frame_reuse          unmap lazily, free, reallocate and write the
 *                             frame while a CPU with interrupts off still
 *                             translates to it: it must neither read the new
 *                             data nor write into the new owner's frame.
 *   frame_reuse_undeferred    the same with the allocator's hold-back off:
 *                             must fail (XFAIL).
 *   concurrent_initiators     every CPU remaps its own page and shoots it
 *                             down (random mode) while reading the others'.
 *
 * Then, in tlb_tests_targets.c: irqoff_targets, halted_target, idle_skipped,
 * untouched_skipped, kmap_recycle_sync/_lazy, counters; in tlb_tests_timing.c
 * (bench=1): bench_targets, bench_irqoff_sections.
 */
#include "cmdline.h"
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "ktest.h"
#include "mm.h"
#include "smp.h"
#include "time.h"
#include "tlb.h"
#include "trap.h"
#include "x86.h"

#include "tlb_tests.h"

/* ---- Helpers (the shared ones are declared in tlb_tests.h). */

uint64_t rng_seed(uint64_t salt)
{
	uint64_t s = config.seed * 0x9e3779b97f4a7c15ull + salt * 0xbf58476d1ce4e5b9ull + 1;
	for (int i = 0; i < 4; i++)
		rng_next(&s);
	return s ? s : 1;
}

bool bar_wait(struct barrier *b, uint64_t *mine)
{
	uint64_t want = ++*mine * (uint64_t)b->n;
	__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL);
	if (!spin_until(__atomic_load_n(&b->count, __ATOMIC_ACQUIRE) >= want || b->abort, WAIT_NS))
		b->abort = 1;
	return !b->abort;
}

/* The lazy completion rule: pass one of the catch-up points (tlb.h), chosen at random. */
static void lazy_complete(uint64_t *rng)
{
	switch (rng_next(rng) % 3) {
	case 0:
		local_irq_disable();
		local_irq_enable();
		break;
	case 1: {
		unsigned long f = local_irq_save();
		local_irq_restore(f);
		break;
	}
	default:
		tlb_switch_hook();
		break;
	}
}

/* Spin with interrupts off for about `ns` (no watchdog trouble below its threshold). */
void irqoff_spin(uint64_t ns, uint64_t va, uint64_t lo, uint64_t hi, volatile int *bad)
{
	unsigned long f = local_irq_save();
	uint64_t end = rdtsc() + ns_to_tsc(ns);
	while ((int64_t)(rdtsc() - end) < 0) {
		if (va) {
			uint64_t v = peek(va);
			if (v < lo || v > hi)
				__atomic_add_fetch(bad, 1, __ATOMIC_RELAXED);
		}
		cpu_relax();
	}
	local_irq_restore(f);
}

/*
 * Work scaled down when vCPUs outnumber the host's CPUs: every step that
 * needs all CPUs at once then waits for the host to run each of them.
 */
int scaled(int base, int floor)
{
	int n = num_online_cpus(), host = config.host_cpus > 0 ? config.host_cpus : n;
	int over = (n + host - 1) / host;
	int v = over <= 2 ? base / over : base / (over * over);
	return v > floor ? v : floor;
}

/* ---- Stale translations after a remap. */

struct stale {
	enum tlb_mode mode;
	int rounds;
	uint64_t va, frames[2];
	struct barrier bar;
	volatile uint64_t flushed; /* the last round whose shootdown returned */
	volatile int stale_after, bad_before, bad_during, reported;
	uint64_t seed;
};

static int initiator_of(const struct stale *s, int round, int n)
{
	uint64_t x = s->seed ^ ((uint64_t)round * 0x9e3779b97f4a7c15ull);
	return (int)(rng_next(&x) % (uint64_t)n);
}

static void stale_worker(void *arg)
{
	struct stale *s = arg;
	int me = smp_processor_id(), n = s->bar.n;
	uint64_t k = 0, rng = s->seed + (uint64_t)me * 7919;

	for (uint64_t r = 1; r <= (uint64_t)s->rounds; r++) {
		int init = initiator_of(s, (int)r, n);
		if (!bar_wait(&s->bar, &k))
			return;
		/* Every CPU caches the current translation (frame holding r - 1). */
		uint64_t v = peek(s->va);
		if (v != r - 1 && __atomic_add_fetch(&s->bad_before, 1, __ATOMIC_RELAXED) <= 3)
			kprintf("  # round %lu: CPU %d read %lu before the remap\n", r, me, v);
		if (!bar_wait(&s->bar, &k))
			return;
		if (me == init) {
			uint64_t pa = s->frames[r & 1];
			fill_frame(pa, r);
			vm_map(s->va, pa, PAGE_SIZE, VM_WRITE | VM_REPLACE);
			ndelay(rng_next(&rng) % 20000);
			flush_tlb_range_mode(s->va, s->va + PAGE_SIZE, s->mode);
			if (peek(s->va) != r)
				__atomic_add_fetch(&s->stale_after, 1, __ATOMIC_RELAXED);
			__atomic_store_n(&s->flushed, r, __ATOMIC_RELEASE);
			continue;
		}
		if (rng_next(&rng) % 3 == 0) /* a section with interrupts off, old or new visible */
			irqoff_spin(rng_next(&rng) % 100000, s->va, r - 1, r, &s->bad_during);
		/* Wait for the shootdown, reading all along: keeps the old translation hot. */
		uint64_t deadline = rdtsc() + ns_to_tsc(WAIT_NS);
		while (__atomic_load_n(&s->flushed, __ATOMIC_ACQUIRE) < r) {
			v = peek(s->va);
			if (v != r && v != r - 1)
				__atomic_add_fetch(&s->bad_during, 1, __ATOMIC_RELAXED);
			if ((int64_t)(rdtsc() - deadline) > 0 || s->bar.abort) {
				s->bar.abort = 1;
				return;
			}
			cpu_relax();
		}
		if (s->mode == TLB_LAZY)
			lazy_complete(&rng);
		v = peek(s->va);
		if (v != r && __atomic_add_fetch(&s->stale_after, 1, __ATOMIC_RELAXED) <= 3)
			kprintf(
			    "  # round %lu: CPU %d still reads frame %lu after the %s shootdown\n",
			    r, me, v, s->mode == TLB_SYNC ? "synchronous" : "lazy");
	}
}

static int stale_rounds(void)
{
	return scaled(150, 20);
}

static void run_stale(enum tlb_mode mode, int rounds, uint64_t salt)
{
	static struct stale s;
	int n = num_online_cpus();

	memset(&s, 0, sizeof(s));
	s.mode = mode;
	s.rounds = rounds;
	s.bar.n = n;
	s.seed = rng_seed(salt);
	s.va = vm_area_alloc(PAGE_SIZE, PAGE_SIZE);
	s.frames[0] = frame_alloc();
	s.frames[1] = frame_alloc();
	KT_EXPECT(s.va && s.frames[0] && s.frames[1]);
	if (!s.va || !s.frames[0] || !s.frames[1])
		return;
	fill_frame(s.frames[0], 0);
	KT_EXPECT_EQ(vm_map(s.va, s.frames[0], PAGE_SIZE, VM_WRITE), 0);

	uint64_t t0 = arch_now_ns();
	KT_EXPECT_EQ(smp_run_all(stale_worker, &s, 30000), 0);
	KT_EXPECT_EQ(s.bar.abort, 0);
	kprintf("  # %s: %d rounds on %d CPUs in %lu ms: %d stale reads after the shootdown, "
	        "%d during it, %d before\n",
	        mode == TLB_SYNC ? "sync" : "lazy", rounds, n, (arch_now_ns() - t0) / NSEC_PER_MSEC,
	        s.stale_after, s.bad_during, s.bad_before);
	KT_EXPECT_EQ(s.stale_after, 0);
	KT_EXPECT_EQ(s.bad_during, 0);
	KT_EXPECT_EQ(s.bad_before, 0);

	vm_unmap(s.va, PAGE_SIZE);
	flush_tlb_range_mode(s.va, s.va + PAGE_SIZE, TLB_SYNC);
	frame_free(s.frames[0]);
	frame_free(s.frames[1]);
	vm_area_free(s.va, PAGE_SIZE);
}

KTEST(tlb, stale_sync, .min_cpus = 2, .timeout_ms = 40000)
{
	run_stale(TLB_SYNC, stale_rounds(), 1);
}

KTEST(tlb, stale_lazy, .min_cpus = 2, .timeout_ms = 40000)
{
	run_stale(TLB_LAZY, stale_rounds(), 2);
}

KTEST(tlb, stale_skipped_flush, .min_cpus = 2, .timeout_ms = 40000, .flags = KT_XFAIL,
      .reason = "targets that acknowledge a shootdown without flushing keep reading the old "
                "frame")
{
	tlb_debug_skip_flush = true;
	run_stale(TLB_SYNC, 20, 3);
	tlb_debug_skip_flush = false;
	/* Drop what the skipped flushes left behind, everywhere. */
	flush_tlb_all_mode(TLB_SYNC);
}

/* ---- A frame freed after a lazy shootdown, reused while a CPU still translates to it. */

#define OLD_TAG 0x01d01d01d01d01d0ull
#define NEW_TAG 0x0e3e3e3e3e3e3e3eull
#define SLOW_MARK 0x5105105105105105ull
#define REUSE_ALLOCS 64

struct reuse {
	uint64_t va, frame;
	volatile int ready, stop, ended, faulted;
	volatile int bad_reads;
	volatile uint64_t writes, done_after;
};

/* The slow CPU: interrupts off, reading and writing through its cached translation. */
static void reuse_slow_cpu(void *arg)
{
	struct reuse *x = arg;
	volatile uint64_t *p = (volatile uint64_t *)x->va;
	struct fault_catch fc;

	p[0] = SLOW_MARK; /* cache a writable translation */
	(void)p[1];
	unsigned long f = local_irq_save();
	__atomic_store_n(&x->ready, 1, __ATOMIC_RELEASE);
	uint64_t deadline = rdtsc() + ns_to_tsc(3 * NSEC_PER_SEC), touch = rdtsc();
	fault_catch_begin(&fc);
	if (kernel_setjmp(&fc.jb) == 0) {
		while (!x->stop && (int64_t)(rdtsc() - deadline) < 0) {
			for (int i = 1; i < 512; i += 31)
				if (p[i] != OLD_TAG)
					x->bad_reads++;
			p[0] = SLOW_MARK;
			x->writes++;
			if (rdtsc() - touch > ns_to_tsc(100 * NSEC_PER_MSEC)) {
				watchdog_touch();
				touch = rdtsc();
			}
		}
	} else {
		x->faulted = 1; /* the translation was evicted: the access faulted, as it should */
	}
	fault_catch_end();
	watchdog_touch();
	local_irq_restore(f); /* the lazy flush happens here */
	x->done_after = tlb_cpu_done(smp_processor_id());
	__atomic_store_n(&x->ended, 1, __ATOMIC_RELEASE);
}

static void run_reuse(void)
{
	static struct reuse x;
	uint64_t got[REUSE_ALLOCS];
	int reused = 0, corrupted = 0;

	memset(&x, 0, sizeof(x));
	x.va = vm_area_alloc(PAGE_SIZE, PAGE_SIZE);
	x.frame = frame_alloc();
	KT_EXPECT(x.va && x.frame);
	if (!x.va || !x.frame)
		return;
	fill_frame(x.frame, OLD_TAG);
	vm_map(x.va, x.frame, PAGE_SIZE, VM_WRITE);
	KT_EXPECT_EQ(smp_launch(1, reuse_slow_cpu, &x), 0);
	KT_EXPECT(spin_until(__atomic_load_n(&x.ready, __ATOMIC_ACQUIRE), WAIT_NS));

	vm_unmap(x.va, PAGE_SIZE);
	uint64_t ticket = flush_tlb_range_mode(x.va, x.va + PAGE_SIZE, TLB_LAZY);
	KT_EXPECT(ticket != 0);
	frame_free_after(x.frame, ticket);
	/* Reallocate and write: the held-back frame must not come back yet. */
	for (int i = 0; i < REUSE_ALLOCS; i++) {
		got[i] = frame_alloc();
		if (got[i] == x.frame)
			reused++;
		if (got[i])
			fill_frame(got[i], NEW_TAG);
	}
	frame_reclaim();
	bool held = !frame_is_free(x.frame);
	mdelay(5); /* let the slow CPU read and write a while longer */
	bool overlapped = !__atomic_load_n(&x.ended, __ATOMIC_ACQUIRE) && !x.faulted;
	KT_EXPECT(!tlb_ticket_done(ticket) || !overlapped);
	x.stop = 1;
	KT_EXPECT(spin_until(__atomic_load_n(&x.ended, __ATOMIC_ACQUIRE), WAIT_NS));
	for (int i = 0; i < REUSE_ALLOCS; i++) {
		const uint64_t *p = phys_to_virt(got[i]);
		for (int w = 0; got[i] && w < 512; w++)
			if (p[w] != NEW_TAG) {
				corrupted++;
				break;
			}
	}
	kprintf("  # slow CPU %s while the frame was freed and %d frames reallocated: "
	        "%d reused it, %d of them written through the stale translation, %d stale reads of "
	        "new data, %lu writes, frame %s until then\n",
	        overlapped ? "had interrupts off" : "was NOT overlapping (check moot)",
	        REUSE_ALLOCS, reused, corrupted, x.bad_reads, x.writes,
	        held ? "held back" : "NOT held back");
	KT_EXPECT(overlapped);
	KT_EXPECT_EQ(reused, 0);
	KT_EXPECT_EQ(corrupted, 0);
	KT_EXPECT_EQ(x.bad_reads, 0);
	KT_EXPECT(held);
	KT_EXPECT(x.done_after >= ticket);
	if (!tlb_debug_no_defer) {
		frame_reclaim();
		KT_EXPECT(tlb_ticket_done(ticket));
		KT_EXPECT(frame_is_free(x.frame)); /* and once everyone flushed, it is back */
	}
	for (int i = 0; i < REUSE_ALLOCS; i++)
		if (got[i])
			frame_free(got[i]);
	vm_area_free(x.va, PAGE_SIZE);
}

KTEST(tlb, lazy_frame_reuse, .min_cpus = 2, .timeout_ms = 10000)
{
	run_reuse();
}

KTEST(tlb, frame_reuse_undeferred, .min_cpus = 2, .timeout_ms = 10000, .flags = KT_XFAIL,
      .reason = "a frame reused before a lazy shootdown completed is read and written through "
                "the old translation")
{
	tlb_debug_no_defer = true;
	run_reuse();
	tlb_debug_no_defer = false;
}

/* ---- Every CPU an initiator at once. */

struct conc {
	int rounds;
	uint64_t va[MAX_CPUS], frame[MAX_CPUS];
	volatile uint64_t completed[MAX_CPUS];
	struct barrier bar;
	volatile int bad_tag, stale, oom, bad_during;
	uint64_t seed;
};

static void conc_worker(void *arg)
{
	struct conc *c = arg;
	int me = smp_processor_id(), n = c->bar.n;
	uint64_t k = 0, rng = c->seed + (uint64_t)me * 104729;

	if (!bar_wait(&c->bar, &k))
		return;
	for (uint64_t v = 1; v <= (uint64_t)c->rounds && !c->bar.abort; v++) {
		uint64_t pa = frame_alloc();
		if (!pa) {
			c->oom++;
			break;
		}
		fill_frame(pa, (uint64_t)me << 32 | v);
		vm_map(c->va[me], pa, PAGE_SIZE, VM_WRITE | VM_REPLACE);
		enum tlb_mode mode = rng_next(&rng) & 1 ? TLB_SYNC : TLB_LAZY;
		uint64_t ticket = flush_tlb_range_mode(c->va[me], c->va[me] + PAGE_SIZE, mode);
		frame_free_after(c->frame[me], ticket);
		c->frame[me] = pa;
		__atomic_store_n(&c->completed[me], v, __ATOMIC_RELEASE);

		int j = (int)(rng_next(&rng) % (uint64_t)n);
		uint64_t done = __atomic_load_n(&c->completed[j], __ATOMIC_ACQUIRE);
		lazy_complete(&rng);
		uint64_t w = peek(c->va[j]);
		if (w >> 32 != (uint64_t)j)
			c->bad_tag++; /* a reused frame read through a stale translation */
		else if ((w & 0xffffffff) < done)
			c->stale++;
		if (rng_next(&rng) % 8 == 0) {
			/* Lag on purpose; what we see meanwhile must still be j's own frames. */
			unsigned long f = local_irq_save();
			uint64_t end = rdtsc() + ns_to_tsc(rng_next(&rng) % 50000);
			while ((int64_t)(rdtsc() - end) < 0)
				if (peek(c->va[j]) >> 32 != (uint64_t)j)
					c->bad_during++;
			local_irq_restore(f);
		}
	}
}

KTEST(tlb, concurrent_initiators, .timeout_ms = 40000)
{
	static struct conc c;
	int n = num_online_cpus();
	struct tlb_stats before, after;

	memset(&c, 0, sizeof(c));
	c.rounds = scaled(100, 20);
	c.bar.n = n;
	c.seed = rng_seed(4);
	for (int j = 0; j < n; j++) {
		c.va[j] = vm_area_alloc(PAGE_SIZE, PAGE_SIZE);
		c.frame[j] = frame_alloc();
		if (!c.va[j] || !c.frame[j]) {
			kt_fail(__FILE__, __LINE__, "no memory for the test pages");
			return;
		}
		fill_frame(c.frame[j], (uint64_t)j << 32);
		vm_map(c.va[j], c.frame[j], PAGE_SIZE, VM_WRITE);
	}
	tlb_stats_read(&before);
	uint64_t t0 = arch_now_ns();
	KT_EXPECT_EQ(smp_run_all(conc_worker, &c, 30000), 0);
	tlb_stats_read(&after);
	kprintf("  # %d CPUs x %d remaps in %lu ms: %lu sync + %lu lazy shootdowns, %lu IPIs "
	        "(%lu coalesced); %d stale, %d foreign frames read\n",
	        n, c.rounds, (arch_now_ns() - t0) / NSEC_PER_MSEC,
	        after.shootdowns[TLB_SYNC] - before.shootdowns[TLB_SYNC],
	        after.shootdowns[TLB_LAZY] - before.shootdowns[TLB_LAZY],
	        after.ipis_sent - before.ipis_sent, after.ipis_coalesced - before.ipis_coalesced,
	        c.stale, c.bad_tag + c.bad_during);
	KT_EXPECT_EQ(c.bar.abort, 0);
	KT_EXPECT_EQ(c.oom, 0);
	KT_EXPECT_EQ(c.bad_tag, 0);
	KT_EXPECT_EQ(c.bad_during, 0);
	KT_EXPECT_EQ(c.stale, 0);
	for (int j = 0; j < n; j++)
		vm_unmap(c.va[j], PAGE_SIZE);
	uint64_t ticket = flush_tlb_all_mode(TLB_SYNC);
	for (int j = 0; j < n; j++) {
		frame_free_after(c.frame[j], ticket);
		vm_area_free(c.va[j], PAGE_SIZE);
	}
	frame_reclaim();
}
