/*
 * The scheduler: kernel threads, per-CPU run queues with fixed priorities,
 * the four preemption models, sleeping until a TSC deadline, wait queues,
 * and the rt-mutex with priority inheritance.  docs/sched.md describes the
 * design; this header is the whole public interface.
 *
 * Priorities: 0 (lowest) .. SCHED_PRIO_MAX (highest); a higher one always
 * runs first on a CPU, equal ones share it round-robin in SCHED_SLICE_NS
 * slices (when the model lets the scheduler take the CPU back).  The idle
 * thread sits below 0.  The boot context (the test harness) is thread 0,
 * "main", pinned to CPU 0 at SCHED_PRIO_DEFAULT.
 *
 * Preemption models (`preempt=`, config.preempt):
 *   none       a thread runs until it blocks, yields or exits;
 *   voluntary  also at cond_resched() and cond_resched_lock() points;
 *   full       also on return from an interrupt and at preempt_enable()
 *              when preempt_count() is zero; spinlocks disable preemption;
 *   rt         full, and spinlock_t becomes an rt-mutex (a sleeping lock
 *              with priority inheritance); raw_spinlock_t still spins.
 */
#ifndef LOCKLAB_SCHED_H
#define LOCKLAB_SCHED_H

#include "cmdline.h"
#include "cpu.h"
#include "lock/rtmutex.h"
#include "smp.h"
#include "time.h"
#include "types.h"

#define SCHED_NR_PRIO 32
#define SCHED_PRIO_MAX (SCHED_NR_PRIO - 1)
#define SCHED_PRIO_DEFAULT 10
#define SCHED_PRIO_IDLE (-1)
#define SCHED_SLICE_NS (10 * NSEC_PER_MSEC)
#define THREAD_STACK_SIZE (16 * 1024)
#define THREAD_NAME_LEN 24
/* thread_create()'s cpu argument: any online CPU, placed where it runs soonest. */
#define THREAD_ANY_CPU (-1)

#define EDEADLK 35

enum thread_state {
	THREAD_NEW,     /* created, not started */
	THREAD_RUNNING, /* running or runnable */
	THREAD_BLOCKED, /* asleep: a wait queue, a deadline, an rt-mutex */
	THREAD_DEAD,    /* exited; thread_join() frees it */
};

/* Intrusive doubly linked list (circular; an initialised head points at itself). */
struct sched_link {
	struct sched_link *next, *prev;
};

struct rt_waiter;

struct thread {
	uint64_t rsp; /* saved stack pointer: must stay first (switch.asm) */
	int id;
	char name[THREAD_NAME_LEN];
	volatile int state; /* enum thread_state */
	int prio;           /* effective: base_prio, or boosted by inheritance */
	int base_prio;
	volatile int cpu;    /* the run queue it belongs to */
	bool queued;         /* on that run queue's lists (the running thread is not) */
	volatile int on_cpu; /* its registers are live on a CPU (or being saved) */
	bool slice_expired;  /* requeue behind its equals */
	int migrate_to;      /* -1, or a CPU to move to when it next switches out */
	int migrate_disable; /* >0: the idle balancer leaves it where it is */
	cpumask_t affinity;
	struct sched_link rq_link;
	uint64_t slice_end; /* TSC */

	/* Timed sleep: on the timer list of the CPU it slept on. */
	uint64_t wake_tsc;
	uint64_t timer_woken_tsc;   /* when the timer interrupt that ended its last sleep ran */
	int timer_cpu;              /* -1: no timer armed */
	volatile bool timer_firing; /* the tick is waking it right now */
	struct sched_link timer_link;

	/* rt-mutex: the top waiter of each lock it owns; the lock it waits for. */
	struct rt_waiter *pi_waiters;
	struct rt_waiter *blocked_on;

	void (*fn)(void *);
	void *arg;
	void *stack; /* base (lowest address); NULL for adopted boot stacks */
	size_t stack_size;
	volatile bool reaped; /* dead and switched out for good */
	bool pool;            /* struct from the thread pool (freed on join) */

	/* Statistics. */
	uint64_t nvcsw, nivcsw; /* voluntary / involuntary switches out */
	uint64_t runtime_tsc, switched_in_tsc;
	uint64_t migrations;
};

/* ---- Set-up (kmain calls sched_init once the other CPUs are online). */

void sched_init(void);
/* True once sched_init() has run: threads, sleeping, blocking. */
extern volatile bool sched_running;
/* The model the scheduler runs (config.preempt at boot). */
enum preempt_model sched_model(void);
/* An AP's boot context, once sched_running: become this CPU's idle thread. */
__noreturn void sched_idle_loop(void);

/* ---- Threads. */

/*
 * A new thread in THREAD_NEW state: fn(arg) runs on a guarded stack of its
 * own at `prio`, pinned to `cpu`, or anywhere with THREAD_ANY_CPU.  NULL
 * when out of threads.  thread_start() makes it runnable; returning from
 * fn is thread_exit().
 */
struct thread *thread_create(void (*fn)(void *), void *arg, const char *name, int prio, int cpu);
void thread_start(struct thread *t);
struct thread *thread_run(void (*fn)(void *), void *arg, const char *name, int prio, int cpu);
/* Wait (bounded) for t to exit, then free it.  False on timeout: t lives on. */
bool thread_join(struct thread *t, uint64_t timeout_ms);
__noreturn void thread_exit(void);

static inline struct thread *this_thread(void)
{
	struct thread *t;
	__asm__ volatile("mov %%gs:%c1, %0" : "=r"(t) : "i"(offsetof(struct cpu, sched_current)));
	return t;
}

/* Allowed CPUs; moves t if it sits elsewhere.  -1 if the mask has no online CPU. */
int thread_set_affinity(struct thread *t, const cpumask_t *mask);
/*
 * Move t to `cpu` now (t's affinity must allow it; -1 otherwise).  A
 * thread running on another CPU moves when it next switches out: at once
 * under full and rt, at its next block or yield under none.
 */
int thread_migrate(struct thread *t, int cpu);
/* The base priority; the effective one may be higher while t owns a boosted rt-mutex. */
void thread_set_prio(struct thread *t, int prio);
int thread_prio(const struct thread *t);
/* Keep the running thread on its CPU (the idle balancer will not pull it); nests. */
void migrate_disable(void);
void migrate_enable(void);

/* Give the CPU to another runnable thread of equal or higher priority, if any. */
void yield(void);
/* Switch to the best runnable thread (the running one, if it still is). */
void schedule(void);
/* Sleep until the TSC reaches `deadline` (absolute).  Never returns early. */
void sleep_until(uint64_t deadline_tsc);
void sleep_ns(uint64_t ns);
void msleep(uint64_t ms);

/* ---- Preemption. */

static inline int preempt_count(void)
{
	int n;
	__asm__ volatile("movl %%gs:%c1, %0" : "=r"(n) : "i"(offsetof(struct cpu, preempt_count)));
	return n;
}

/* One instruction each, so it cannot be split by an interrupt or a migration. */
static inline void preempt_count_inc(void)
{
	__asm__ volatile("incl %%gs:%c0" : : "i"(offsetof(struct cpu, preempt_count)) : "memory");
}

static inline void preempt_count_dec(void)
{
	__asm__ volatile("decl %%gs:%c0" : : "i"(offsetof(struct cpu, preempt_count)) : "memory");
}

static inline void preempt_disable(void)
{
	preempt_count_inc();
}

static inline void preempt_enable_no_resched(void)
{
	preempt_count_dec();
}

/* full and rt: the preemption point when the count drops to zero. */
void preempt_enable(void);
/* voluntary and above: reschedule here if needed and allowed.  True if it switched. */
bool cond_resched(void);
/* Could the running code sleep here (a thread with preemption and interrupts on)? */
bool sched_can_sleep(void);

/* ---- Wait queues. */

struct wait_queue {
	uint32_t lock; /* a tiny spinlock, interrupts off while held */
	struct sched_link head;
};

struct wait_entry {
	struct thread *thread;
	struct sched_link link;
};

#define WAIT_QUEUE_INIT(wq)                                   \
	{                                                     \
		.lock = 0, .head = { &(wq).head, &(wq).head } \
	}
#define DEFINE_WAIT_QUEUE(wq) struct wait_queue wq = WAIT_QUEUE_INIT(wq)

void wait_queue_init(struct wait_queue *wq);
/* Queue the running thread on wq and mark it blocked; then test, then schedule(). */
void prepare_to_wait(struct wait_queue *wq, struct wait_entry *e);
void finish_wait(struct wait_queue *wq, struct wait_entry *e);
/* Wake every / the first waiting thread; returns how many were woken. */
int wake_up(struct wait_queue *wq);
int wake_up_one(struct wait_queue *wq);

/* Sleep until `cond` holds (re-tested after every wake-up). */
#define wait_event(wq, cond)                               \
	do {                                               \
		struct wait_entry __we = {.thread = NULL}; \
		for (;;) {                                 \
			prepare_to_wait(&(wq), &__we);     \
			if (cond)                          \
				break;                     \
			schedule();                        \
		}                                          \
		finish_wait(&(wq), &__we);                 \
	} while (0)

/* The same with an absolute TSC deadline; evaluates to whether cond held. */
#define wait_event_until(wq, cond, deadline_tsc)                      \
	({                                                            \
		struct wait_entry __we = {.thread = NULL};            \
		bool __ok;                                            \
		for (;;) {                                            \
			prepare_to_wait(&(wq), &__we);                \
			if ((__ok = (cond)))                          \
				break;                                \
			if ((int64_t)(rdtsc() - (deadline_tsc)) >= 0) \
				break;                                \
			sched_timed_block(deadline_tsc);              \
		}                                                     \
		finish_wait(&(wq), &__we);                            \
		__ok;                                                 \
	})

/* schedule(), with a timer that wakes the (already blocked) thread at the deadline. */
void sched_timed_block(uint64_t deadline_tsc);

/* Wake a blocked thread (true if it was blocked).  Safe from interrupts. */
bool wake_up_thread(struct thread *t);

/* ---- rt-mutex: a sleeping lock with transitive priority inheritance. */

void rt_mutex_init(struct rt_mutex *m, const char *name, unsigned flags);
void rt_mutex_lock(struct rt_mutex *m);
/*
 * rt_mutex_lock() that reports a deadlock instead of sleeping forever:
 * 0, or -EDEADLK when waiting would close a cycle of owners (the cycle is
 * printed as `# rtmutex: deadlock: ...`).  rt_mutex_lock() panics there.
 */
int rt_mutex_lock_checked(struct rt_mutex *m);
bool rt_mutex_trylock(struct rt_mutex *m);
void rt_mutex_unlock(struct rt_mutex *m);
struct thread *rt_mutex_owner(const struct rt_mutex *m);
bool rt_mutex_has_waiters(const struct rt_mutex *m);

/* ---- Statistics and debugging. */

struct sched_stats {
	uint64_t switches;    /* context switches on this CPU */
	uint64_t preemptions; /* of those, involuntary */
	uint64_t ticks;       /* timer interrupts handled by the scheduler */
	uint64_t idle_entries;
	uint64_t pulls; /* threads the idle balancer took from other CPUs */
	/* timer events an idle CPU armed to look again at a busy CPU's queue (idle.c) */
	uint64_t pull_retries;
};
void sched_get_stats(int cpu, struct sched_stats *out);
/* Is `cpu` halted in its idle loop (no tick armed unless a sleeper needs one)? */
bool sched_cpu_idle(int cpu);
/* One line per live thread: `# thread <id> <name> cpu=... prio=... state=...`. */
void sched_dump_threads(void);

#endif
