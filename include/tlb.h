/*
 * TLB shootdown: invalidating kernel translations on every CPU that may
 * hold them, in one of two modes (the rules are at the top of
 * kernel/mm/tlb.c; docs/mm.md explains them):
 *
 *   TLB_SYNC  send the flush IPI and wait until every target has flushed;
 *             a target with interrupts off delays the initiator that long.
 *   TLB_LAZY  publish the flush and send the IPI without waiting; a target
 *             flushes at the latest when it next enables interrupts
 *             (local_irq_enable/restore, interrupt return), uses the kmap
 *             window, switches context, or goes idle.
 *
 * `shootdown=sync|lazy` on the command line picks the default.
 */
#ifndef LOCKLAB_TLB_H
#define LOCKLAB_TLB_H

#include "smp.h"
#include "types.h"

enum tlb_mode {
	TLB_DEFAULT = -1, /* config.shootdown */
	TLB_SYNC = 0,
	TLB_LAZY = 1,
};

/*
 * Past this many pages a range flush reloads CR3 (or, for ranges holding
 * global mappings, toggles CR4.PGE) instead of issuing one INVLPG per page.
 * Each INVLPG costs about as much as refilling a few TLB entries, so past
 * a few dozen pages the full flush plus the refills of what is really in
 * use is cheaper; 32 is in line with Linux's tlb_single_page_flush_ceiling (33).
 */
#define TLB_FLUSH_CEILING_PAGES 32

/*
 * A synchronous initiator waits this long for a target before it dumps the
 * target's stack and panics (a CPU halted with interrupts off never answers).
 */
#define TLB_SYNC_TIMEOUT_MS 5000

/*
 * Invalidate [start, end) (or everything) on every CPU that may hold it.
 * Returns a ticket: 0 when the flush is complete everywhere (synchronous),
 * else the flush's generation, for tlb_ticket_done/wait and frame_free_after.
 * The calling CPU's own TLB is always flushed before the return.
 * Callable with interrupts on or off, not from NMI.
 */
uint64_t flush_tlb_range(uint64_t start, uint64_t end);
uint64_t flush_tlb_all(void);
uint64_t flush_tlb_range_mode(uint64_t start, uint64_t end, enum tlb_mode mode);
uint64_t flush_tlb_all_mode(enum tlb_mode mode);

/* Every CPU that may hold the ticket's translations has dropped them. */
bool tlb_ticket_done(uint64_t ticket);
/* Make lagging CPUs flush (IPI) and wait for them, bounded by TLB_SYNC_TIMEOUT_MS. */
void tlb_ticket_wait(uint64_t ticket);

/*
 * Lazy-flush points.  irq_enable_hook (irq.h) runs the check on every
 * local_irq_enable; the interrupt exit path runs it when returning to an
 * interrupts-on context.  The scheduler calls tlb_switch_hook on every
 * context switch, before the next thread runs.  Each is one compare when
 * nothing is pending.
 */
void tlb_switch_hook(void);
/*
 * Idle: a CPU in its idle loop gets no flush IPIs.  tlb_idle_enter (with
 * interrupts off, right before `sti; hlt`) flushes what is pending and marks
 * the CPU idle; the first interrupt, or tlb_idle_exit, clears the mark and
 * catches up with every flush made meanwhile before anything else runs.
 */
void tlb_idle_enter(void);
void tlb_idle_exit(void);
/* Called by the interrupt entry path (trap.c) before a handler runs. */
void irq_entry_hook(void);

/*
 * A region only some CPUs touch (the kmap window): CPUs that never entered
 * it get no IPIs for flushes inside it.  Entering for the first time flushes
 * this CPU's TLB in full, so whatever it skipped cannot be cached.
 */
struct tlb_domain {
	const char *name;
	uint64_t start, end;
	cpumask_t cpus; /* CPUs that entered; sticky */
	struct tlb_domain *next;
};
void tlb_domain_register(struct tlb_domain *d, const char *name, uint64_t start, uint64_t end);
void tlb_domain_unregister(struct tlb_domain *d);
void tlb_domain_enter(struct tlb_domain *d);

/*
 * Debug switches for the tests that prove the checks can fail:
 * skip_flush - targets acknowledge flushes without invalidating anything;
 * no_defer   - frame_free_after frees at once, ignoring lagging CPUs.
 */
extern volatile bool tlb_debug_skip_flush;
extern volatile bool tlb_debug_no_defer;

/* Where the flushes happened and what they cost, summed over CPUs. */
struct tlb_stats {
	uint64_t shootdowns[2];       /* initiated, by mode (TLB_SYNC, TLB_LAZY) */
	uint64_t initiator_cycles[2]; /* time in flush_tlb_*, by mode */
	uint64_t ipis_sent;           /* flush IPIs sent */
	uint64_t ipis_coalesced;      /* not sent: one already on its way */
	uint64_t skipped_idle;        /* targets skipped: idle */
	uint64_t skipped_untouched;   /* targets skipped: never entered the domain */
	uint64_t flush_pages;         /* local flushes by INVLPG (pages) */
	uint64_t flush_full;          /* local flushes by CR3 reload / PGE toggle */
	uint64_t target_cycles;       /* time targets spent flushing (IPI handler, hooks) */
	uint64_t done_self, done_ipi, done_irq, done_kmap, done_switch, done_idle, done_wait,
	    done_join;   /* where a CPU caught up */
	uint64_t nudges; /* IPIs sent to let held-back frames go */
};
void tlb_stats_read(struct tlb_stats *out);
/* The flush generation `cpu` has reached, and the one it was asked to reach (for tests). */
uint64_t tlb_cpu_done(int cpu);
uint64_t tlb_cpu_want(int cpu);

void tlb_init(void);

#endif
