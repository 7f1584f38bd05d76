/*
 * TLB shootdown, synchronous or lazy (Linux's tlb_gen design, applied to
 * the kernel's one address space, and M. Hemment's observation that a
 * flush need not be waited for if every CPU catches up before it could
 * use a stale translation).
 *
 * State.  `tlb_gen` counts shootdowns; each takes the next generation g
 * and records its range in a small ring, slot g % TLB_RING.  Per CPU:
 * `want` (the highest generation some initiator asked it to reach; raised
 * by initiators), `done` (the generation it has reached; written only by
 * itself), `idle`, and `ipi_pending` (a flush IPI is on its way).
 *
 * The rules, and where each is enforced:
 *
 *  1. Change first, then number.  An initiator changes the page tables
 *     before it takes its generation (flush_tlb_*: the caller has changed
 *     them; shoot() increments tlb_gen with a full barrier).  So "done >= g"
 *     on a CPU means every change numbered g or lower is out of its TLB.
 *
 *  2. Catching up to w (flush_upto) invalidates the ranges of every
 *     generation in (done, w], whichever CPU each targeted, read from the
 *     ring; a slot that was overwritten, is being written, or covers too
 *     much makes it a full flush instead.  Then done = w.
 *
 *  3. Targets.  Every online CPU but the initiator, except
 *     (a) idle CPUs (`idle` set, read after the increment of rule 1; a CPU
 *         clears it with a full barrier and then reads tlb_gen, so one of
 *         the two sees the other), which catch up to tlb_gen when they
 *         leave idle: in irq_entry_hook before any interrupt handler, and
 *         in tlb_idle_exit;
 *     (b) for a range inside a tlb_domain, CPUs that never entered it
 *         (domain mask read after the increment; entering sets the bit
 *         with a full barrier, then catches up to tlb_gen).
 *     Each target gets want >= g (a CAS max) and, unless one is already
 *     pending, a VEC_TLB IPI.  The initiator catches up itself at once.
 *
 *  4. Synchronous mode: the initiator then waits until each target's done
 *     is >= g (bounded by TLB_SYNC_TIMEOUT_MS).  It waits with the
 *     caller's interrupt state; with interrupts off it catches up on its
 *     own pending flushes while it spins, so two synchronous initiators
 *     never wait for each other forever.  Never hold a lock that another CPU
 *     may spin on with interrupts off across a synchronous flush: that CPU
 *     cannot take the IPI (the kmap window's lock is taken with interrupts
 *     on for this reason).
 *
 *  5. Lazy mode: the initiator returns after rule 3.  A target catches up
 *     (want > done is the one compare on every path) in the IPI handler
 *     when its interrupts are on, and otherwise, at the latest, in
 *     irq_enable_hook (local_irq_enable, local_irq_restore), on return from
 *     an interrupt to an interrupts-on context (trap.c: iretq would enable
 *     interrupts without local_irq_enable), in kmap before it uses the
 *     window, in tlb_switch_hook on a context switch, and before it idles.
 *     Until then it may still translate through the old entries: it must
 *     not be handed an address it did not map itself without passing one
 *     of those points first (the stale-translation tests do just that).
 *
 *  6. Reuse.  While a CPU may still translate through an old entry, the
 *     frame behind it must not be reused (it would read the new owner's
 *     data or write into it): frame_free_after() holds frames back until
 *     tlb_completed_gen() (the least `done` of the online CPUs that are not
 *     idle) reaches the shootdown's generation; frame_reclaim() nudges CPUs
 *     that lag (want raised, IPI) so the wait ends even for CPUs that were
 *     never targeted.  VMAP address ranges (kstack_free) wait the same way.
 *     Page-table pages of the kernel's tables are never freed, so a
 *     speculative walk through a stale upper-level entry never reads a
 *     reused page.
 *
 * Interrupts are off (raw pushf/cli, no hook recursion) around every
 * update of a CPU's own state, so an interrupt cannot see it half done.
 */
#include "tlb.h"
#include "apic.h"
#include "cmdline.h"
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "mm.h"
#include "mm/internal.h"
#include "smp.h"
#include "time.h"
#include "trap.h"
#include "x86.h"

/* Generations whose ranges are remembered; a CPU further behind flushes everything. */
#define TLB_RING 64
#define SLOT_BUSY (1ull << 63)
#define RANGE_ALL_START 0ull
#define RANGE_ALL_END (~0ull)

enum where { W_SELF, W_IPI, W_IRQ, W_KMAP, W_SWITCH, W_IDLE, W_WAIT, W_JOIN };

struct tlb_cpu {
	/* Written by initiators. */
	volatile uint64_t want;
	volatile uint32_t ipi_pending;
	/* Written by this CPU, read by initiators and reclaim. */
	volatile uint64_t done __cacheline_aligned;
	volatile uint32_t idle;
	/* Statistics, written by this CPU only. */
	uint64_t shootdowns[2] __cacheline_aligned;
	uint64_t initiator_cycles[2];
	uint64_t ipis_sent, ipis_coalesced, skipped_idle, skipped_untouched;
	uint64_t flush_pages, flush_full, target_cycles, nudges;
	uint64_t done_at[8];
} __cacheline_aligned;

struct ring_slot {
	volatile uint64_t gen; /* SLOT_BUSY while written */
	volatile uint64_t start, end;
};

static struct tlb_cpu tlb_cpus[MAX_CPUS];
static struct ring_slot ring[TLB_RING];
static volatile uint64_t tlb_gen;
static bool tlb_ready;
static struct tlb_domain *volatile domains;

volatile bool tlb_debug_skip_flush;
volatile bool tlb_debug_no_defer;

static inline unsigned long irq_save_raw(void)
{
	unsigned long f = read_rflags();
	__asm__ volatile("cli" ::: "memory");
	return f;
}

static inline void irq_restore_raw(unsigned long f)
{
	if (f & RFLAGS_IF)
		__asm__ volatile("sti" ::: "memory");
}

static inline struct tlb_cpu *me(void)
{
	return &tlb_cpus[this_cpu()->id];
}

/* ---- Local invalidation. */

static void flush_everything(void)
{
	if (cpu_has_pge) { /* toggling PGE drops global entries too */
		uint64_t cr4 = read_cr4();
		write_cr4(cr4 & ~CR4_PGE);
		write_cr4(cr4);
	} else {
		write_cr3(read_cr3());
	}
}

/* Only the VMAP area and the kmap window hold non-global entries. */
static bool non_global(uint64_t start, uint64_t end)
{
	return start >= VMAP_BASE && end <= KMAP_END && start < end;
}

/* ---- The ring of recent ranges (see rule 2). */

static void ring_record(uint64_t g, uint64_t start, uint64_t end)
{
	struct ring_slot *s = &ring[g % TLB_RING];
	uint64_t old = __atomic_load_n(&s->gen, __ATOMIC_RELAXED);

	do {
		if ((old & SLOT_BUSY) || old >= g)
			return; /* another writer: readers of g will flush everything */
	} while (!__atomic_compare_exchange_n(&s->gen, &old, g | SLOT_BUSY, false, __ATOMIC_ACQ_REL,
	                                      __ATOMIC_RELAXED));
	s->start = start;
	s->end = end;
	__atomic_store_n(&s->gen, g, __ATOMIC_RELEASE);
}

static bool ring_read(uint64_t g, uint64_t *start, uint64_t *end)
{
	struct ring_slot *s = &ring[g % TLB_RING];

	if (__atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) != g)
		return false;
	*start = s->start;
	*end = s->end;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(&s->gen, __ATOMIC_RELAXED) == g;
}

/* ---- Catching up (rule 2); interrupts off, on this CPU's own state. */

static void flush_upto(struct tlb_cpu *t, uint64_t target, enum where where)
{
	uint64_t d = t->done;
	if (target <= d)
		return;

	uint64_t t0 = rdtsc();
	uint64_t rs[TLB_FLUSH_CEILING_PAGES], re[TLB_FLUSH_CEILING_PAGES];
	int nr = 0;
	uint64_t pages = 0;
	bool full = target - d > TLB_RING, global = full;

	for (uint64_t x = d + 1; !full && x <= target; x++) {
		uint64_t s, e;
		if (!ring_read(x, &s, &e)) {
			full = global = true;
			break;
		}
		if (!non_global(s, e))
			global = true;
		uint64_t n = e - s > TLB_FLUSH_CEILING_PAGES * PAGE_SIZE
		                 ? TLB_FLUSH_CEILING_PAGES + 1
		                 : (ALIGN_UP(e, PAGE_SIZE) - ALIGN_DOWN(s, PAGE_SIZE)) / PAGE_SIZE;
		if (pages + n > TLB_FLUSH_CEILING_PAGES) {
			/* A full flush; read on only to learn whether a CR3 reload is enough. */
			full = true;
			for (x++; !global && x <= target; x++)
				if (!ring_read(x, &s, &e) || !non_global(s, e))
					global = true;
			break;
		}
		rs[nr] = ALIGN_DOWN(s, PAGE_SIZE);
		re[nr++] = e;
		pages += n;
	}
	if (!(tlb_debug_skip_flush && where != W_SELF)) {
		if (full && global) {
			flush_everything();
		} else if (full) {
			write_cr3(read_cr3());
		} else {
			for (int i = 0; i < nr; i++)
				for (uint64_t va = rs[i]; va < re[i]; va += PAGE_SIZE)
					invlpg(va);
		}
	}
	__atomic_store_n(&t->done, target, __ATOMIC_RELEASE);
	if (full)
		t->flush_full++;
	else
		t->flush_pages += pages;
	t->done_at[where]++;
	if (where != W_SELF && where != W_IPI) /* the IPI handler times itself whole */
		t->target_cycles += rdtsc() - t0;
}

static void catch_up(enum where where)
{
	unsigned long f = irq_save_raw();
	struct tlb_cpu *t = me();
	flush_upto(t, __atomic_load_n(&t->want, __ATOMIC_ACQUIRE), where);
	irq_restore_raw(f);
}

static inline bool pending(void)
{
	if (!tlb_ready)
		return false;
	struct tlb_cpu *t = me();
	return __atomic_load_n(&t->want, __ATOMIC_ACQUIRE) > t->done;
}

/* The strong definition of irq.h's hook (trap.c has a weak empty one). */
void irq_enable_hook(void)
{
	if (pending())
		catch_up(W_IRQ);
}

void tlb_switch_hook(void)
{
	if (pending())
		catch_up(W_SWITCH);
}

void tlb_kmap_hook(void)
{
	if (pending())
		catch_up(W_KMAP);
}

/* ---- Idle (rule 3a). */

void tlb_idle_enter(void)
{
	if (!tlb_ready)
		return;
	unsigned long f = irq_save_raw();
	struct tlb_cpu *t = me();
	flush_upto(t, __atomic_load_n(&t->want, __ATOMIC_ACQUIRE), W_IDLE);
	__atomic_exchange_n(&t->idle, 1, __ATOMIC_SEQ_CST);
	irq_restore_raw(f);
}

static void idle_exit(struct tlb_cpu *t)
{
	__atomic_exchange_n(&t->idle, 0, __ATOMIC_SEQ_CST);
	uint64_t g = __atomic_load_n(&tlb_gen, __ATOMIC_SEQ_CST);
	uint64_t w = __atomic_load_n(&t->want, __ATOMIC_ACQUIRE);
	flush_upto(t, g > w ? g : w, W_IDLE);
}

void tlb_idle_exit(void)
{
	if (!tlb_ready)
		return;
	unsigned long f = irq_save_raw();
	struct tlb_cpu *t = me();
	if (t->idle)
		idle_exit(t);
	irq_restore_raw(f);
}

void irq_entry_hook(void)
{
	if (!tlb_ready)
		return;
	struct tlb_cpu *t = me();
	if (t->idle)
		idle_exit(t);
}

/* ---- Domains (rule 3b). */

void tlb_domain_register(struct tlb_domain *d, const char *name, uint64_t start, uint64_t end)
{
	d->name = name;
	d->start = start;
	d->end = end;
	cpumask_clear(&d->cpus);
	struct tlb_domain *head = domains;
	do
		d->next = head;
	while (!__atomic_compare_exchange_n(&domains, &head, d, false, __ATOMIC_RELEASE,
	                                    __ATOMIC_RELAXED));
}

/* Only once no CPU flushes or enters it any more (tests). */
void tlb_domain_unregister(struct tlb_domain *d)
{
	struct tlb_domain *volatile *p = &domains;
	while (*p && *p != d)
		p = &(*p)->next;
	if (*p)
		*p = d->next;
}

static struct tlb_domain *domain_of(uint64_t start, uint64_t end)
{
	for (struct tlb_domain *d = __atomic_load_n(&domains, __ATOMIC_ACQUIRE); d; d = d->next)
		if (start >= d->start && end <= d->end)
			return d;
	return NULL;
}

void tlb_domain_enter(struct tlb_domain *d)
{
	if (!tlb_ready)
		return;
	unsigned long f = irq_save_raw();
	int id = this_cpu()->id;
	if (!cpumask_test_cpu(id, &d->cpus)) {
		struct tlb_cpu *t = &tlb_cpus[id];
		cpumask_set_cpu(id, &d->cpus);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		uint64_t g = __atomic_load_n(&tlb_gen, __ATOMIC_SEQ_CST);
		uint64_t w = __atomic_load_n(&t->want, __ATOMIC_ACQUIRE);
		flush_upto(t, g > w ? g : w, W_JOIN);
	}
	irq_restore_raw(f);
}

/* ---- Initiating (rules 1, 3, 4, 5). */

static void raise_want(struct tlb_cpu *t, uint64_t g)
{
	uint64_t old = __atomic_load_n(&t->want, __ATOMIC_RELAXED);
	while (old < g && !__atomic_compare_exchange_n(&t->want, &old, g, false, __ATOMIC_SEQ_CST,
	                                               __ATOMIC_RELAXED))
		;
}

/* Raise `cpu`'s want to g and make sure an IPI is on its way; true if one was sent. */
static bool poke(int cpu, uint64_t g)
{
	struct tlb_cpu *t = &tlb_cpus[cpu];
	raise_want(t, g);
	if (__atomic_exchange_n(&t->ipi_pending, 1, __ATOMIC_ACQ_REL))
		return false;
	send_ipi(cpu, VEC_TLB);
	return true;
}

static __noreturn void sync_timeout(int cpu, uint64_t g)
{
	kprintf("# tlb: CPU %d has not flushed generation %lu (done %lu) within %d ms\n", cpu, g,
	        tlb_cpus[cpu].done, TLB_SYNC_TIMEOUT_MS);
	arch_dump_cpu_stack(cpu);
	panic("TLB shootdown: CPU %d did not acknowledge within %d ms", cpu, TLB_SYNC_TIMEOUT_MS);
}

static void wait_done(int cpu, uint64_t g)
{
	struct tlb_cpu *t = &tlb_cpus[cpu];
	uint64_t start = rdtsc(), touched = start;
	uint64_t limit = ns_to_tsc(TLB_SYNC_TIMEOUT_MS * NSEC_PER_MSEC);
	uint64_t touch_every = ns_to_tsc(100 * NSEC_PER_MSEC);

	while (__atomic_load_n(&t->done, __ATOMIC_ACQUIRE) < g) {
		if (irqs_disabled()) {
			/* Nobody can interrupt us: serve flushes aimed at us, keep the watchdog
			 * quiet. */
			if (pending())
				catch_up(W_WAIT);
			uint64_t now = rdtsc();
			if (now - touched > touch_every) {
				watchdog_touch();
				touched = now;
			}
		}
		if (rdtsc() - start > limit)
			sync_timeout(cpu, g);
		cpu_relax();
	}
}

static uint64_t shoot(uint64_t start, uint64_t end, enum tlb_mode mode)
{
	if (mode == TLB_DEFAULT)
		mode = config.shootdown == SHOOTDOWN_LAZY ? TLB_LAZY : TLB_SYNC;
	if (!tlb_ready) {
		flush_everything();
		return 0;
	}

	uint64_t t0 = rdtsc();
	cpumask_t targets;
	int cpu;
	cpumask_clear(&targets);

	unsigned long f = irq_save_raw();
	int self = this_cpu()->id;
	struct tlb_cpu *t = &tlb_cpus[self];
	uint64_t g = __atomic_add_fetch(&tlb_gen, 1, __ATOMIC_SEQ_CST);
	ring_record(g, start, end);
	struct tlb_domain *dom = domain_of(start, end);
	for_each_online_cpu(cpu) {
		if (cpu == self)
			continue;
		if (dom && !cpumask_test_cpu(cpu, &dom->cpus)) {
			t->skipped_untouched++;
			continue;
		}
		if (__atomic_load_n(&tlb_cpus[cpu].idle, __ATOMIC_SEQ_CST)) {
			t->skipped_idle++;
			continue;
		}
		cpumask_set_cpu(cpu, &targets);
		if (poke(cpu, g))
			t->ipis_sent++;
		else
			t->ipis_coalesced++;
	}
	flush_upto(t, g, W_SELF);
	irq_restore_raw(f);

	if (mode == TLB_SYNC)
		for_each_cpu(cpu, &targets)
			wait_done(cpu, g);

	/* Statistics on the CPU we started on: we may have been moved meanwhile. */
	t->shootdowns[mode]++;
	t->initiator_cycles[mode] += rdtsc() - t0;
	return mode == TLB_SYNC ? 0 : g;
}

uint64_t flush_tlb_range_mode(uint64_t start, uint64_t end, enum tlb_mode mode)
{
	if (end <= start)
		return 0;
	return shoot(start, end, mode);
}

uint64_t flush_tlb_all_mode(enum tlb_mode mode)
{
	return shoot(RANGE_ALL_START, RANGE_ALL_END, mode);
}

uint64_t flush_tlb_range(uint64_t start, uint64_t end)
{
	return flush_tlb_range_mode(start, end, TLB_DEFAULT);
}

uint64_t flush_tlb_all(void)
{
	return flush_tlb_all_mode(TLB_DEFAULT);
}

static void tlb_ipi(struct trapframe *tf)
{
	uint64_t t0 = rdtsc();
	(void)tf;
	lapic_eoi();
	struct tlb_cpu *t = me();
	__atomic_exchange_n(&t->ipi_pending, 0, __ATOMIC_SEQ_CST);
	flush_upto(t, __atomic_load_n(&t->want, __ATOMIC_ACQUIRE), W_IPI);
	t->target_cycles += rdtsc() - t0;
}

/* ---- Completion (rule 6). */

uint64_t tlb_completed_gen(void)
{
	uint64_t least = __atomic_load_n(&tlb_gen, __ATOMIC_SEQ_CST);
	int cpu;

	for_each_online_cpu(cpu) {
		struct tlb_cpu *t = &tlb_cpus[cpu];
		uint64_t d = __atomic_load_n(&t->done, __ATOMIC_ACQUIRE);
		if (d < least && !__atomic_load_n(&t->idle, __ATOMIC_SEQ_CST))
			least = d;
	}
	return least;
}

bool tlb_gen_done(uint64_t gen)
{
	return gen <= tlb_completed_gen();
}

bool tlb_ticket_done(uint64_t ticket)
{
	return !ticket || !tlb_ready || tlb_gen_done(ticket);
}

void tlb_nudge(uint64_t gen)
{
	int cpu, self = smp_processor_id();

	for_each_online_cpu(cpu) {
		struct tlb_cpu *t = &tlb_cpus[cpu];
		if (cpu == self || __atomic_load_n(&t->done, __ATOMIC_ACQUIRE) >= gen ||
		    __atomic_load_n(&t->idle, __ATOMIC_SEQ_CST))
			continue;
		if (poke(cpu, gen))
			tlb_cpus[self].nudges++;
	}
	struct tlb_cpu *t = &tlb_cpus[self];
	if (t->done < gen) {
		raise_want(t, gen);
		catch_up(W_WAIT);
	}
}

void tlb_ticket_wait(uint64_t ticket)
{
	uint64_t start = rdtsc(), limit = ns_to_tsc(TLB_SYNC_TIMEOUT_MS * NSEC_PER_MSEC);

	while (!tlb_ticket_done(ticket)) {
		tlb_nudge(ticket);
		if (rdtsc() - start > limit) {
			int cpu;
			for_each_online_cpu(cpu)
				if (tlb_cpus[cpu].done < ticket && !tlb_cpus[cpu].idle)
					sync_timeout(cpu, ticket);
		}
		cpu_relax();
	}
}

/* ---- Figures and set-up. */

void tlb_stats_read(struct tlb_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (int c = 0; c < ncpus && c < MAX_CPUS; c++) {
		const struct tlb_cpu *t = &tlb_cpus[c];
		for (int m = 0; m < 2; m++) {
			out->shootdowns[m] += t->shootdowns[m];
			out->initiator_cycles[m] += t->initiator_cycles[m];
		}
		out->ipis_sent += t->ipis_sent;
		out->ipis_coalesced += t->ipis_coalesced;
		out->skipped_idle += t->skipped_idle;
		out->skipped_untouched += t->skipped_untouched;
		out->flush_pages += t->flush_pages;
		out->flush_full += t->flush_full;
		out->target_cycles += t->target_cycles;
		out->nudges += t->nudges;
		out->done_self += t->done_at[W_SELF];
		out->done_ipi += t->done_at[W_IPI];
		out->done_irq += t->done_at[W_IRQ];
		out->done_kmap += t->done_at[W_KMAP];
		out->done_switch += t->done_at[W_SWITCH];
		out->done_idle += t->done_at[W_IDLE];
		out->done_wait += t->done_at[W_WAIT];
		out->done_join += t->done_at[W_JOIN];
	}
}

uint64_t tlb_cpu_done(int cpu)
{
	return __atomic_load_n(&tlb_cpus[cpu].done, __ATOMIC_ACQUIRE);
}

uint64_t tlb_cpu_want(int cpu)
{
	return __atomic_load_n(&tlb_cpus[cpu].want, __ATOMIC_ACQUIRE);
}

void tlb_init(void)
{
	register_irq_handler(VEC_TLB, tlb_ipi);
	tlb_ready = true;
}
