/*
 * arch.h - the only thing kernel/lock/ depends on.
 *
 * Every lock primitive in this directory is written against this thin layer so
 * that the same .c files build into the kernel and into the host torture
 * harness (pthreads, ThreadSanitizer).  It provides:
 *
 *   atomics          GCC __atomic builtins, used directly; identical on both sides
 *   cpu_relax()      the spin-loop hint (PAUSE)
 *   arch_cpu_id()    the current CPU (host: a per-thread index set by the harness)
 *   arch_num_cpus()  CPUs online
 *   arch_irq_save()/arch_irq_restore()   (host: no-ops)
 *   arch_halt_if(word, old)   sleep until kicked, unless *word != old already
 *   arch_kick_cpu(cpu)        wake a CPU sleeping in arch_halt_if()
 *   arch_now_ns()    a monotonic nanosecond clock
 *   arch_dump_stack(), arch_dump_cpu_stack(cpu)   debug backtraces
 *   arch_need_resched()       does the scheduler want this CPU back?
 *   lock_printf(), lock_panic()
 *   lock_preempt_disable()/lock_preempt_enable(), lock_cond_resched()
 *
 * LOCKLAB_HOST selects arch_host.h, otherwise arch_kernel.h is used.
 */
#ifndef LOCKLAB_LOCK_ARCH_H
#define LOCKLAB_LOCK_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOCK_CACHELINE 64
#define __lock_aligned __attribute__((aligned(LOCK_CACHELINE)))

/* Size of the per-CPU arrays in this directory (MCS nodes, PV wait slots). */
#ifndef LOCK_MAX_CPUS
#define LOCK_MAX_CPUS 64
#endif

/* Contexts that can nest on one CPU while spinning: task, softirq, hardirq, NMI. */
#define LOCK_MAX_NESTING 4

#ifdef LOCKLAB_HOST
#include "arch_host.h"
#else
#include "arch_kernel.h"
#endif

#define lock_likely(x) __builtin_expect(!!(x), 1)
#define lock_unlikely(x) __builtin_expect(!!(x), 0)

#endif /* LOCKLAB_LOCK_ARCH_H */
