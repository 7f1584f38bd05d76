/* Per-CPU state: struct cpu (reached through GS) and per-CPU variables. */
#ifndef LOCKLAB_CPU_H
#define LOCKLAB_CPU_H

#include "types.h"

#define MAX_CPUS 256

struct fault_catch;

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __packed;

struct cpu {
	struct cpu *self; /* must stay first: this_cpu() reads %gs:0 */
	int id; /* dense index 0..ncpus-1; the boot CPU is 0 (offset: lock/arch_kernel.h) */
	uint32_t apic_id;
	/*
	 * kernel/sched: here so that one %gs-relative instruction reaches them;
	 * kernel/lock/arch_kernel.h inlines the same offsets (checked in sched.c).
	 */
	int preempt_count;      /* >0: no preemption on this CPU */
	volatile bool resched;  /* the scheduler wants this CPU to switch */
	uint64_t percpu_offset; /* added to a per-CPU variable's address */
	volatile bool online;
	struct fault_catch *fault; /* an exception a test expects, or NULL */
	uint64_t stack_top;
	struct tss tss;
	volatile uint64_t heartbeat; /* advanced by the timer tick (watchdog) */
	int irq_depth;               /* >0 inside an interrupt handler */
	void *sched_current;         /* the thread running on this CPU (struct thread) */
	void *arch;                  /* owned by kernel/apic */
} __cacheline_aligned;

extern struct cpu cpus[MAX_CPUS];
extern int ncpus; /* CPUs brought online (the boot CPU included) */

static inline struct cpu *this_cpu(void)
{
	struct cpu *c;
	__asm__ volatile("mov %%gs:0, %0" : "=r"(c));
	return c;
}

int smp_processor_id(void);
int num_online_cpus(void);
/* A reschedule is pending on this CPU (set by the scheduler, read by cond_resched*). */
bool need_resched(void);

/* Make `c` the current CPU's struct cpu (GS base) and load its GDT/TSS/IDT. */
void cpu_init(struct cpu *c);
/* Give `c` guarded interrupt (IST) stacks from kstack_alloc (once mm_init has run). */
void cpu_setup_ist_stacks(struct cpu *c);

/*
 * Per-CPU variables: DEFINE_PER_CPU puts the template in .percpu; each CPU
 * has a copy at its percpu_offset (the boot CPU's offset is 0, so it uses
 * the template itself).
 */
#define DEFINE_PER_CPU(type, name) __attribute__((section(".percpu"))) __typeof__(type) name
#define DECLARE_PER_CPU(type, name) extern __typeof__(type) name
#define per_cpu_ptr(var, cpu) ((__typeof__(&(var)))((char *)&(var) + cpus[(cpu)].percpu_offset))
#define per_cpu(var, cpu) (*per_cpu_ptr(var, cpu))
#define this_cpu_ptr(var) ((__typeof__(&(var)))((char *)&(var) + this_cpu()->percpu_offset))
#define this_cpu_var(var) (*this_cpu_ptr(var))

/* Allocate and fill CPU `id`'s copy of the per-CPU area. */
void percpu_setup(int id);

#endif
