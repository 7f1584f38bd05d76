/*
 * Shared by the files of kernel/sched/ and nobody else: the run queue, the
 * list operations and the scheduler's own locks.
 *
 * Locks, in the order they nest (each is taken with interrupts off):
 *   a wait queue's lock  or  the rt-mutex pi_lock (never both)
 *     -> one run queue's lock (never two at once: moving a thread between
 *        CPUs drops the first before taking the second)
 * A run queue's lock is held across a context switch: the thread switching
 * out takes it, the thread switching in releases it (finish_switch).
 */
#ifndef LOCKLAB_SCHED_INTERNAL_H
#define LOCKLAB_SCHED_INTERNAL_H

#include "sched.h"
#include "trap.h"
#include "x86.h"

/* kernel/lock's arch layer has its own cpu_relax (the same PAUSE). */
#define cpu_relax lock_arch_cpu_relax
#include "lock/spinlock.h"
#undef cpu_relax

#define STACK_MAGIC 0x5354414b4d414749ull /* at the lowest word of a thread's stack */

struct rq {
	struct ticket_lock lock; /* the scheduler's own lock: no preemption hooks */
	int cpu;
	struct thread *curr, *idle;
	uint32_t bitmap; /* bit p: queue[p] is not empty */
	int nr_queued;
	struct sched_link queue[SCHED_NR_PRIO];
	struct sched_link timers; /* threads sleeping to a deadline, earliest first */
	uint64_t next_event;      /* TSC the LAPIC timer is armed for */
	bool timer_armed;
	uint64_t last_tick; /* TSC of the last timer interrupt (the busy tick's phase) */
	volatile bool idle_halted;
	volatile bool adopted; /* the CPU runs its idle thread under the scheduler */
	struct sched_stats stats;
} __cacheline_aligned;

extern struct rq runqueues[MAX_CPUS];

static inline struct rq *this_rq(void)
{
	return &runqueues[this_cpu()->id];
}

static inline void rq_lock(struct rq *rq)
{
	ticket_lock(&rq->lock);
}

static inline void rq_unlock(struct rq *rq)
{
	ticket_unlock(&rq->lock);
}

/* ---- Lists. */

static inline void link_init(struct sched_link *h)
{
	h->next = h->prev = h;
}

static inline bool link_empty(const struct sched_link *h)
{
	return h->next == h;
}

static inline void link_add_tail(struct sched_link *n, struct sched_link *h)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static inline void link_add_head(struct sched_link *n, struct sched_link *h)
{
	n->next = h->next;
	n->prev = h;
	h->next->prev = n;
	h->next = n;
}

/* Insert n before `at`. */
static inline void link_add_before(struct sched_link *n, struct sched_link *at)
{
	link_add_tail(n, at);
}

static inline void link_del(struct sched_link *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

#define link_entry(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* ---- Between the files. */

/* Lock the run queue t belongs to (t->cpu may change until it is held). */
struct rq *thread_rq_lock(struct thread *t);
/*
 * Switch away from the running thread, whose state says what becomes of it
 * (RUNNING: requeued; BLOCKED: sleeps).  Interrupts must be off; the
 * preemption count is raised around the switch here.
 */
void sched_switch_out(void);
/* Change t's effective priority (inheritance), requeueing it.  Interrupts off. */
void sched_change_prio(struct thread *t, int prio);
/* full and rt: switch now if a reschedule is pending and we may. */
void preempt_check(void);
/* The context switch (switch.asm): returns, in the new context, the thread switched from. */
struct thread *sched_switch(struct thread *prev, struct thread *next);
/* Interrupts off, on the sleeper's CPU: wake t at `deadline` (replaces its timer). */
void sched_timer_arm(struct thread *t, uint64_t deadline);
void sched_timer_cancel(struct thread *t);

/* sched.c: run queue lists (rq locked) and the requests between CPUs. */
void enqueue(struct rq *rq, struct thread *t, bool head);
void dequeue(struct rq *rq, struct thread *t);
int top_queued_prio(const struct rq *rq);
struct thread *first_queued(struct rq *rq); /* rq->nr_queued must be > 0 */
/* Ask `cpu` to reschedule (an IPI unless it is this one or already asked). */
void resched_cpu(int cpu);
/* Threads allowed on `aff` wait on CPU `busy`: wake one idle CPU that may take one. */
void kick_idle(int busy, const cpumask_t *aff);
/* t was just queued on rq (locked): preempt rq's CPU, or kick an idle one to take t. */
void check_preempt(struct rq *rq, struct thread *t);
/* `what` switches out: panic, with the context, if it was called where nothing may. */
void sched_check_may_switch(const char *what);

/* timer.c */
void sched_timer_init(void);
/* Arm this CPU's timer for its next event (rq locked, interrupts off); see timer.c. */
void rq_program_timer(struct rq *rq, uint64_t now, bool force);
/* The LAPIC timer's hook. */
void sched_tick(struct trapframe *tf);

/* thread.c */
void thread_fields_init(struct thread *t, const char *name, int prio, int cpu);
void *thread_stack_alloc(size_t size);
/* The stack a first switch to t pops, ending in sched_thread_entry (switch.asm). */
void thread_prepare_stack(struct thread *t);
/* A dead thread has switched out for good: thread_join() may return. */
void thread_reap(struct thread *t);
void thread_dump(const struct thread *t);
void thread_pool_dump(void);

/* idle.c */
extern cpumask_t idle_mask; /* CPUs in their idle loop, about to halt or halted */
void sched_idle_init(void);
void sched_idle_entry(void *arg);    /* CPU 0's idle thread */
void sched_launch_worker(void *arg); /* one per AP: runs smp_launch() work */

/* rtmutex.c: set t's base priority and re-derive the inherited one. */
void pi_set_base_prio(struct thread *t, int prio);

#endif
