/*
 * The `tlb` suite, continued from tlb_tests.c: the CPUs a shootdown
 * targets.  Their state (interrupts off, halted, idle, never in the
 * domain) is what makes synchronous and lazy shootdown differ in cost and
 * what lets IPIs be skipped, so each state gets its own test here.
 *
 *   irqoff_targets            sync waits for targets with interrupts off;
 *                             lazy does not, and they catch up on enabling.
 *   halted_target             targets in HLT, with interrupts on (sync) and
 *                             off (lazy, woken by NMI).
 *   idle_skipped              idle CPUs get no IPI and catch up on wake-up.
 *   untouched_skipped         CPUs that never entered a domain get no IPI.
 *   kmap_recycle_sync/_lazy   the kmap pool under load, recycled with the lock
 *                             held, while CPUs sit with interrupts off.
 *   counters                  where flushes happened, IPIs sent and skipped.
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
#include "x86.h"

#include "tlb_tests.h"

/* ---- Targets with interrupts off, and targets halted. */

/*
 * A target's interrupt-off section ends on an event, not a clock (a host
 * may stall any vCPU for longer than a section): once it has been asked to
 * flush (sync: the initiator is waiting for it), or once the initiator has
 * returned (lazy: it did not wait).  Bounded by SECTION_MAX_NS.
 */
#define SECTION_MAX_NS (3 * NSEC_PER_SEC)

struct irqoff {
	uint64_t va;
	enum tlb_mode mode;
	volatile int inside, entered, returned;
	volatile uint64_t done_after[MAX_CPUS], read_after[MAX_CPUS], want_before[MAX_CPUS];
};

static void irqoff_target(void *arg)
{
	struct irqoff *x = arg;
	int me = smp_processor_id();

	(void)peek(x->va);
	unsigned long f = local_irq_save();
	uint64_t want0 = tlb_cpu_want(me);
	x->want_before[me] = want0;
	__atomic_add_fetch(&x->inside, 1, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&x->entered, 1, __ATOMIC_ACQ_REL);
	uint64_t end = rdtsc() + ns_to_tsc(SECTION_MAX_NS), touch = rdtsc();
	while ((int64_t)(rdtsc() - end) < 0) {
		(void)peek(x->va);
		if (x->mode == TLB_SYNC ? tlb_cpu_want(me) > want0 : x->returned)
			break;
		if (rdtsc() - touch > ns_to_tsc(100 * NSEC_PER_MSEC)) {
			watchdog_touch();
			touch = rdtsc();
		}
		cpu_relax();
	}
	__atomic_sub_fetch(&x->inside, 1, __ATOMIC_ACQ_REL);
	local_irq_restore(f); /* lazy: the flush happens here */
	x->done_after[me] = tlb_cpu_done(me);
	x->read_after[me] = peek(x->va);
}

static void launch_others(void (*fn)(void *), void *arg)
{
	int cpu;
	for_each_online_cpu(cpu)
		if (cpu != smp_processor_id())
			KT_EXPECT_EQ(smp_launch(cpu, fn, arg), 0);
}

static void wait_others(void)
{
	int cpu;
	for_each_online_cpu(cpu)
		if (cpu != smp_processor_id())
			KT_EXPECT(smp_wait_launched(cpu, 5000));
}

KTEST(tlb, irqoff_targets, .min_cpus = 2, .timeout_ms = 15000)
{
	static struct irqoff x;
	int others = num_online_cpus() - 1;
	uint64_t va = vm_area_alloc(PAGE_SIZE, PAGE_SIZE);
	uint64_t a = frame_alloc(), b = frame_alloc();

	KT_EXPECT(va && a && b);
	if (!va || !a || !b)
		return;
	fill_frame(a, 1);
	fill_frame(b, 2);
	for (int mode = TLB_SYNC; mode <= TLB_LAZY; mode++) {
		uint64_t from = mode == TLB_SYNC ? a : b, to = mode == TLB_SYNC ? b : a;
		memset(&x, 0, sizeof(x));
		x.va = va;
		x.mode = (enum tlb_mode)mode;
		vm_map(va, from, PAGE_SIZE, VM_WRITE | VM_REPLACE);
		flush_tlb_all_mode(TLB_SYNC);
		launch_others(irqoff_target, &x);
		KT_EXPECT(spin_until(x.entered == others, WAIT_NS));
		vm_map(va, to, PAGE_SIZE, VM_WRITE | VM_REPLACE);
		uint64_t t0 = rdtsc();
		uint64_t ticket = flush_tlb_range_mode(va, va + PAGE_SIZE, x.mode);
		uint64_t took = tsc_to_ns(rdtsc() - t0);
		int still_inside = __atomic_load_n(&x.inside, __ATOMIC_ACQUIRE);
		__atomic_store_n(&x.returned, 1, __ATOMIC_RELEASE);
		wait_others();
		int cpu, late = 0, stale = 0;
		for_each_online_cpu(cpu) {
			if (cpu == smp_processor_id())
				continue;
			if (x.done_after[cpu] < x.want_before[cpu] + 1 ||
			    (ticket && x.done_after[cpu] < ticket))
				late++;
			if (x.read_after[cpu] != (to == b ? 2u : 1u))
				stale++;
		}
		kprintf(
		    "  # %s: returned after %lu us with %d of %d targets still in their "
		    "interrupt-off section; after it, %d had not flushed, %d read the old frame\n",
		    mode == TLB_SYNC ? "sync" : "lazy", took / 1000, still_inside, others, late,
		    stale);
		if (mode == TLB_SYNC) {
			/* Returned only once every target had left its section and flushed. */
			KT_EXPECT_EQ(still_inside, 0);
			KT_EXPECT_EQ(ticket, 0);
		} else {
			/* Returned while every target was still in its section. */
			KT_EXPECT_EQ(still_inside, others);
			KT_EXPECT(ticket != 0);
		}
		KT_EXPECT_EQ(late, 0);
		KT_EXPECT_EQ(stale, 0);
	}
	vm_unmap(va, PAGE_SIZE);
	flush_tlb_range_mode(va, va + PAGE_SIZE, TLB_SYNC);
	frame_free(a);
	frame_free(b);
	vm_area_free(va, PAGE_SIZE);
}

struct halted {
	uint64_t va;
	bool irqs_off;
	volatile int ready, stop, woke;
	volatile uint64_t read_after;
};

static void halted_target(void *arg)
{
	struct halted *h = arg;

	(void)peek(h->va);
	if (h->irqs_off) {
		local_irq_disable();
		__atomic_store_n(&h->ready, 1, __ATOMIC_RELEASE);
		while (!h->stop) { /* only an NMI ends this HLT */
			__asm__ volatile("hlt" ::: "memory");
			h->woke++;
		}
		local_irq_enable();
	} else {
		__atomic_store_n(&h->ready, 1, __ATOMIC_RELEASE);
		while (!h->stop) {
			local_irq_disable();
			if (!h->stop)
				__asm__ volatile("sti; hlt" ::: "memory");
			local_irq_enable();
			h->woke++;
		}
	}
	h->read_after = peek(h->va);
}

KTEST(tlb, halted_target, .min_cpus = 2, .timeout_ms = 10000)
{
	static struct halted h;
	uint64_t va = vm_area_alloc(PAGE_SIZE, PAGE_SIZE);
	uint64_t a = frame_alloc(), b = frame_alloc();

	KT_EXPECT(va && a && b);
	if (!va || !a || !b)
		return;
	for (int off = 0; off <= 1; off++) {
		memset(&h, 0, sizeof(h));
		h.va = va;
		h.irqs_off = off;
		fill_frame(a, 1);
		fill_frame(b, 2);
		vm_map(va, a, PAGE_SIZE, VM_WRITE | VM_REPLACE);
		flush_tlb_all_mode(TLB_SYNC);
		KT_EXPECT_EQ(smp_launch(1, halted_target, &h), 0);
		KT_EXPECT(spin_until(h.ready, WAIT_NS));
		mdelay(1); /* in HLT by now */
		vm_map(va, b, PAGE_SIZE, VM_WRITE | VM_REPLACE);
		uint64_t t0 = arch_now_ns();
		uint64_t ticket;
		if (!off) {
			/* HLT with interrupts on: the IPI wakes it and it acknowledges. */
			ticket = flush_tlb_range_mode(va, va + PAGE_SIZE, TLB_SYNC);
			KT_EXPECT(tlb_cpu_done(1) > 0);
		} else {
			/* HLT with interrupts off: lazy does not wait for it... */
			ticket = flush_tlb_range_mode(va, va + PAGE_SIZE, TLB_LAZY);
			KT_EXPECT(tlb_cpu_done(1) < ticket);
			KT_EXPECT(!tlb_ticket_done(ticket));
		}
		uint64_t took = arch_now_ns() - t0;
		h.stop = 1;
		if (off) /* ...and it catches up when an NMI has ended the HLT and it enables
		            interrupts */
			KT_EXPECT(smp_nmi_ping(1, 1000));
		else
			arch_kick_cpu(1);
		KT_EXPECT(smp_wait_launched(1, 5000));
		if (off)
			KT_EXPECT(tlb_cpu_done(1) >= ticket);
		KT_EXPECT_EQ(h.read_after, 2);
		kprintf("  # target in HLT with interrupts %s: %s shootdown returned in %lu us\n",
		        off ? "off" : "on", off ? "lazy" : "sync", took / 1000);
	}
	vm_unmap(va, PAGE_SIZE);
	flush_tlb_range_mode(va, va + PAGE_SIZE, TLB_SYNC);
	frame_free(a);
	frame_free(b);
	vm_area_free(va, PAGE_SIZE);
}

/* ---- CPUs that cannot hold the mapping get no IPI. */

struct prime {
	uint64_t va;
	volatile uint64_t seen;
};

static void prime_read(void *arg)
{
	struct prime *p = arg;
	p->seen = peek(p->va);
}

KTEST(tlb, idle_skipped, .min_cpus = 2, .timeout_ms = 10000)
{
	static struct prime p;
	struct tlb_stats before, after;
	uint64_t va = vm_area_alloc(PAGE_SIZE, PAGE_SIZE);
	uint64_t a = frame_alloc(), b = frame_alloc();
	int rounds = 50, wrong = 0;

	KT_EXPECT(va && a && b);
	if (!va || !a || !b)
		return;
	p.va = va;
	tlb_stats_read(&before);
	for (int r = 0; r < rounds; r++) {
		uint64_t from = r & 1 ? b : a, to = r & 1 ? a : b;
		fill_frame(from, from);
		fill_frame(to, to);
		vm_map(va, from, PAGE_SIZE, VM_WRITE | VM_REPLACE);
		flush_tlb_range_mode(va, va + PAGE_SIZE, TLB_SYNC);
		/* CPU 1 caches the translation, then goes back to idle. */
		smp_launch(1, prime_read, &p);
		smp_wait_launched(1, 5000);
		wrong += p.seen != from;
		mdelay(1);
		vm_map(va, to, PAGE_SIZE, VM_WRITE | VM_REPLACE);
		flush_tlb_range_mode(va, va + PAGE_SIZE, (r & 2) ? TLB_LAZY : TLB_SYNC);
		/* Woken with work: it must have caught up before running it. */
		smp_launch(1, prime_read, &p);
		smp_wait_launched(1, 5000);
		wrong += p.seen != to;
	}
	tlb_stats_read(&after);
	uint64_t skipped = after.skipped_idle - before.skipped_idle;
	kprintf("  # %d shootdowns with the other CPUs idle: %lu IPIs skipped (idle), %lu sent; "
	        "%lu catch-ups on leaving idle; %d stale reads\n",
	        2 * rounds, skipped, after.ipis_sent - before.ipis_sent,
	        after.done_idle - before.done_idle, wrong);
	KT_EXPECT(skipped > 0);
	KT_EXPECT_EQ(wrong, 0);
	vm_unmap(va, PAGE_SIZE);
	flush_tlb_range_mode(va, va + PAGE_SIZE, TLB_SYNC);
	frame_free(a);
	frame_free(b);
	vm_area_free(va, PAGE_SIZE);
}

struct busy {
	struct tlb_domain *dom;
	uint64_t va;
	volatile int stop, started;
	volatile uint64_t seen[MAX_CPUS];
	/* The flush generation CPU 1's last read of seen[1] began in. */
	volatile int gen, seen_gen;
};

/*
 * Busy (not idle) CPUs; CPU 1 uses the domain, the others never touch it.
 * CPU 1 reads the generation before the page, so a read tagged with the
 * generation set after the last flush returned began after that flush:
 * the initiator waits for one before judging, instead of stopping CPU 1
 * at once (its vCPU may not have run a read since the flush).
 */
static void busy_loop(void *arg)
{
	struct busy *b = arg;
	int me = smp_processor_id();

	if (me == 1)
		tlb_domain_enter(b->dom);
	__atomic_add_fetch(&b->started, 1, __ATOMIC_ACQ_REL);
	while (!b->stop) {
		if (me == 1) {
			int g = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
			b->seen[me] = peek(b->va);
			__atomic_store_n(&b->seen_gen, g, __ATOMIC_RELEASE);
		}
		cpu_relax();
	}
}

KTEST(tlb, untouched_skipped, .min_cpus = 3, .timeout_ms = 10000)
{
	static struct tlb_domain dom;
	static struct busy b;
	struct tlb_stats before, after;
	int n = num_online_cpus(), flushes = 100;
	uint64_t va = vm_area_alloc(4 * PAGE_SIZE, PAGE_SIZE);
	uint64_t fa = frame_alloc(), fb = frame_alloc();

	KT_EXPECT(va && fa && fb);
	if (!va || !fa || !fb)
		return;
	memset(&b, 0, sizeof(b));
	fill_frame(fa, 1);
	fill_frame(fb, 2);
	tlb_domain_register(&dom, "test", va, va + 4 * PAGE_SIZE);
	vm_map(va, fa, PAGE_SIZE, VM_WRITE);
	b.dom = &dom;
	b.va = va;
	tlb_domain_enter(&dom);
	launch_others(busy_loop, &b);
	KT_EXPECT(spin_until(b.started == n - 1, WAIT_NS));
	tlb_stats_read(&before);
	for (int i = 0; i < flushes; i++)
		flush_tlb_range_mode(va, va + PAGE_SIZE, i & 1 ? TLB_LAZY : TLB_SYNC);
	tlb_stats_read(&after);
	/* A CPU entering late catches up in full, so it cannot see what it skipped. */
	vm_map(va, fb, PAGE_SIZE, VM_WRITE | VM_REPLACE);
	flush_tlb_range_mode(va, va + PAGE_SIZE, TLB_SYNC);
	__atomic_store_n(&b.gen, 1, __ATOMIC_RELEASE);
	KT_EXPECT(spin_until(__atomic_load_n(&b.seen_gen, __ATOMIC_ACQUIRE) == 1, WAIT_NS));
	b.stop = 1;
	wait_others();
	KT_EXPECT_EQ(b.seen[1], 2);
	uint64_t skipped = after.skipped_untouched - before.skipped_untouched;
	kprintf("  # %d shootdowns in a domain only CPUs 0 and 1 entered: %lu IPIs skipped "
	        "(never touched), %lu sent, %lu coalesced\n",
	        flushes, skipped, after.ipis_sent - before.ipis_sent,
	        after.ipis_coalesced - before.ipis_coalesced);
	KT_EXPECT_EQ(skipped, (uint64_t)flushes * (uint64_t)(n - 2));
	KT_EXPECT(after.ipis_sent - before.ipis_sent <= (uint64_t)flushes);
	tlb_domain_unregister(&dom);
	vm_unmap(va, PAGE_SIZE);
	flush_tlb_range_mode(va, va + PAGE_SIZE, TLB_SYNC);
	frame_free(fa);
	frame_free(fb);
	vm_area_free(va, 4 * PAGE_SIZE);
}

/* ---- The kmap window recycled under load (the seed scenario). */

#define KMAP_FRAMES 64

struct kmap_run {
	enum tlb_mode mode;
	uint64_t frames[KMAP_FRAMES];
	int ops;
	struct barrier bar;
	volatile int bad, irqoff_sections;
	uint64_t seed;
};

static void kmap_worker(void *arg)
{
	struct kmap_run *r = arg;
	int me = smp_processor_id();
	uint64_t k = 0, rng = r->seed + (uint64_t)me * 31337;

	if (!bar_wait(&r->bar, &k))
		return;
	for (int i = 0; i < r->ops; i++) {
		int f = (int)(rng_next(&rng) % KMAP_FRAMES);
		uint64_t *p = kmap(r->frames[f]);
		if (p[0] != r->frames[f] || p[511] != r->frames[f])
			r->bad++;
		kunmap(p);
		uint64_t dice = rng_next(&rng) % 64;
		if (dice == 0)
			kmap_flush_unused();
		else if (dice < 4 && me != 0) {
			r->irqoff_sections++;
			irqoff_spin(rng_next(&rng) % 200000, 0, 0, 0, &r->bad);
		}
	}
}

static void run_kmap(enum tlb_mode mode)
{
	static struct kmap_run r;
	struct kmap_stats ks0, ks1;
	enum shootdown_mode saved = config.shootdown;

	memset(&r, 0, sizeof(r));
	r.mode = mode;
	r.ops = scaled(600, 60);
	r.bar.n = num_online_cpus();
	r.seed = rng_seed(5 + (uint64_t)mode);
	for (int i = 0; i < KMAP_FRAMES; i++) {
		r.frames[i] = frame_alloc();
		if (!r.frames[i]) {
			kt_fail(__FILE__, __LINE__, "out of frames");
			return;
		}
		fill_frame(r.frames[i], r.frames[i]);
	}
	/* The window's recycle uses the default mode. */
	config.shootdown = mode == TLB_LAZY ? SHOOTDOWN_LAZY : SHOOTDOWN_SYNC;
	kmap_stats(&ks0);
	uint64_t t0 = arch_now_ns();
	KT_EXPECT_EQ(smp_run_all(kmap_worker, &r, 30000), 0);
	uint64_t ms = (arch_now_ns() - t0) / NSEC_PER_MSEC;
	kmap_stats(&ks1);
	config.shootdown = saved;
	kprintf("  # %s: %lu kmaps, %lu recycles, %d interrupt-off sections, %lu ms, %d wrong "
	        "contents\n",
	        mode == TLB_SYNC ? "sync" : "lazy", ks1.maps - ks0.maps,
	        ks1.recycles - ks0.recycles, r.irqoff_sections, ms, r.bad);
	KT_EXPECT_EQ(r.bar.abort, 0);
	KT_EXPECT_EQ(r.bad, 0);
	KT_EXPECT(ks1.recycles > ks0.recycles);
	for (int i = 0; i < KMAP_FRAMES; i++)
		frame_free(r.frames[i]);
}

KTEST(tlb, kmap_recycle_sync, .timeout_ms = 40000)
{
	run_kmap(TLB_SYNC);
}

KTEST(tlb, kmap_recycle_lazy, .timeout_ms = 40000)
{
	run_kmap(TLB_LAZY);
}

/* ---- Where flushes happened. */

KTEST(tlb, counters, .timeout_ms = 2000)
{
	struct tlb_stats s, before;
	struct frame_stats fs;

	/* One shootdown of each mode of our own, so the test stands alone. */
	tlb_stats_read(&before);
	tlb_ticket_wait(flush_tlb_all_mode(TLB_SYNC));
	tlb_ticket_wait(flush_tlb_all_mode(TLB_LAZY));
	frame_reclaim();
	tlb_stats_read(&s);
	frame_stats(&fs);
	kprintf("  # shootdowns: %lu sync, %lu lazy; IPIs: %lu sent, %lu coalesced, skipped %lu "
	        "idle + %lu never-touched; nudges %lu\n",
	        s.shootdowns[TLB_SYNC], s.shootdowns[TLB_LAZY], s.ipis_sent, s.ipis_coalesced,
	        s.skipped_idle, s.skipped_untouched, s.nudges);
	kprintf("  # local flushes: %lu pages by INVLPG, %lu full; caught up: initiator %lu, IPI "
	        "%lu, irq-enable/return %lu, kmap %lu, switch %lu, idle %lu, waiting %lu, domain "
	        "entry %lu\n",
	        s.flush_pages, s.flush_full, s.done_self, s.done_ipi, s.done_irq, s.done_kmap,
	        s.done_switch, s.done_idle, s.done_wait, s.done_join);
	kprintf("  # frames: %lu free of %lu, %lu held back now, %lu held back in all, %lu "
	        "released\n",
	        fs.free, fs.total, fs.deferred, fs.deferred_total, fs.reclaimed_total);
	kt_metric("tlb.ipis_skipped_idle", (long long)s.skipped_idle, "ipis", NULL);
	kt_metric("tlb.ipis_skipped_untouched", (long long)s.skipped_untouched, "ipis", NULL);
	kt_metric("tlb.ipis_sent", (long long)s.ipis_sent, "ipis", NULL);
	KT_EXPECT(s.shootdowns[TLB_SYNC] > before.shootdowns[TLB_SYNC]);
	KT_EXPECT(s.shootdowns[TLB_LAZY] > before.shootdowns[TLB_LAZY]);
}
