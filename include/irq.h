/* Interrupt enable/disable with Linux's names. */
#ifndef LOCKLAB_IRQ_H
#define LOCKLAB_IRQ_H

#include "x86.h"

static inline void local_irq_disable(void)
{
	__asm__ volatile("cli" ::: "memory");
}

/*
 * Enabling interrupts is a hook point: work deferred "until this CPU next
 * enables interrupts" (the lazy TLB flush) runs here.
 */
void irq_enable_hook(void);
/* Run before every interrupt handler. */
void irq_entry_hook(void);

static inline void local_irq_enable(void)
{
	irq_enable_hook();
	__asm__ volatile("sti" ::: "memory");
}

static inline bool irqs_disabled(void)
{
	return !(read_rflags() & RFLAGS_IF);
}

unsigned long local_irq_save(void);
void local_irq_restore(unsigned long flags);

#endif
