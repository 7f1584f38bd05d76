/*
 * What the `sched` suite's files (sched_tests.c, sched_tests_idle.c,
 * sched_tests_pi.c) have in common, so that their tests put threads on the
 * same CPU at the same priorities and wait for them the same way.
 */
#ifndef LOCKLAB_TESTS_SCHED_TESTS_H
#define LOCKLAB_TESTS_SCHED_TESTS_H

#include "cpu.h"
#include "kernel.h"
#include "sched.h"
#include "time.h"
#include "x86.h"

#define PRIO_LOW 2
#define PRIO_BUSY 5
#define PRIO_MID 12
#define PRIO_HIGH 20

static inline int target_cpu(void)
{
	return ncpus - 1; /* CPU 0 when it is alone */
}

static inline uint64_t ms_tsc(uint64_t ms)
{
	return ns_to_tsc(ms * NSEC_PER_MSEC);
}

static inline void busy_until(uint64_t tsc)
{
	while ((int64_t)(rdtsc() - tsc) < 0)
		cpu_relax();
}

static inline bool model_preempts(void)
{
	return sched_model() == PREEMPT_FULL || sched_model() == PREEMPT_RT;
}

/* Joins the threads (NULL ones skipped); one that does not exit in time is a failure. */
void join_all(struct thread **t, int n);
/* The same for threads whose run the host may stretch: a failure when progress() stands still. */
void join_all_progressing(struct thread **t, int n, long (*progress)(void));

/* A one-shot event threads can sleep on. */
struct event {
	volatile int set;
	struct wait_queue wq;
};

static inline void event_init(struct event *e)
{
	e->set = 0;
	wait_queue_init(&e->wq);
}

static inline void event_set(struct event *e)
{
	__atomic_store_n(&e->set, 1, __ATOMIC_RELEASE);
	wake_up(&e->wq);
}

static inline bool event_wait(struct event *e, uint64_t ms)
{
	return wait_event_until(e->wq, __atomic_load_n(&e->set, __ATOMIC_ACQUIRE),
	                        rdtsc() + ms_tsc(ms));
}

/* Poll (sleeping) for a condition another CPU or thread makes true. */
#define poll_until(cond, ms)                                               \
	({                                                                 \
		uint64_t __end = rdtsc() + ms_tsc(ms);                     \
		bool __ok;                                                 \
		while (!(__ok = (cond)) && (int64_t)(rdtsc() - __end) < 0) \
			msleep(1);                                         \
		__ok;                                                      \
	})

#endif
