/*
 * The IDT, the exception handlers and interrupt dispatch.
 *
 * An unexpected exception is fatal: it prints the exception, a register
 * dump and a backtrace, then bails out (KTAP "Bail out!") so the runner
 * reports a crash instead of a hang.  A test that *expects* an exception
 * arms a fault_catch first; the handler then resumes at its setjmp point.
 */
#include "trap.h"
#include "cpu.h"
#include "irq.h"
#include "kernel.h"
#include "x86.h"

struct idt_entry {
	uint16_t offset_lo;
	uint16_t selector;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t offset_mid;
	uint32_t offset_hi;
	uint32_t zero;
} __packed;

static struct idt_entry idt[256] __attribute__((aligned(16)));
static irq_handler_t irq_handlers[256];
#define MAX_NMI_HANDLERS 8
static bool (*nmi_handlers[MAX_NMI_HANDLERS])(struct trapframe *tf);
extern const uint64_t isr_table[256];

static const char *const exception_names[32] = {
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved (15)",
    "#MF x87 error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD error",
    "#VE virtualization",
    "#CP control protection",
    "reserved (22)",
    "reserved (23)",
    "reserved (24)",
    "reserved (25)",
    "reserved (26)",
    "reserved (27)",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved (31)",
};

const char *exception_name(int vector)
{
	return vector >= 0 && vector < 32 ? exception_names[vector] : "interrupt";
}

static void set_gate(int vector, uint64_t handler, int ist)
{
	struct idt_entry *e = &idt[vector];
	e->offset_lo = handler & 0xffff;
	e->selector = 0x08;
	e->ist = (uint8_t)ist;
	e->type_attr = 0x8e; /* present, DPL0, 64-bit interrupt gate */
	e->offset_mid = (handler >> 16) & 0xffff;
	e->offset_hi = (uint32_t)(handler >> 32);
	e->zero = 0;
}

/* Remap the legacy 8259 PICs above the exceptions and mask them: the LAPIC is used. */
static void pic_disable(void)
{
	outb(0x20, 0x11);
	outb(0xa0, 0x11);
	outb(0x21, VEC_IRQ_BASE);
	outb(0xa1, VEC_IRQ_BASE + 8);
	outb(0x21, 4);
	outb(0xa1, 2);
	outb(0x21, 1);
	outb(0xa1, 1);
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}

void idt_init(void)
{
	for (int v = 0; v < 256; v++)
		set_gate(v, isr_table[v], 0);
	set_gate(VEC_DF, isr_table[VEC_DF], IST_DOUBLE_FAULT);
	set_gate(VEC_NMI, isr_table[VEC_NMI], IST_NMI);
	set_gate(VEC_MC, isr_table[VEC_MC], IST_MACHINE_CHECK);
	pic_disable();
}

void idt_load(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __packed p = {sizeof(idt) - 1, (uint64_t)idt};
	__asm__ volatile("lidt %0" : : "m"(p));
}

void register_irq_handler(int vector, irq_handler_t fn)
{
	irq_handlers[vector] = fn;
}

void register_nmi_handler(bool (*fn)(struct trapframe *tf))
{
	for (int i = 0; i < MAX_NMI_HANDLERS; i++) {
		if (!nmi_handlers[i]) {
			nmi_handlers[i] = fn;
			return;
		}
	}
	panic("too many NMI handlers");
}

void fault_catch_begin(struct fault_catch *fc)
{
	fc->vector = -1;
	fc->error = fc->cr2 = fc->rip = 0;
	this_cpu()->fault = fc;
}

void fault_catch_end(void)
{
	this_cpu()->fault = NULL;
}

void dump_trapframe(const struct trapframe *tf)
{
	kprintf("# RIP %016lx  RSP %016lx  RFLAGS %016lx\n", tf->rip, tf->rsp, tf->rflags);
	kprintf("# RAX %016lx  RBX %016lx  RCX %016lx\n", tf->rax, tf->rbx, tf->rcx);
	kprintf("# RDX %016lx  RSI %016lx  RDI %016lx\n", tf->rdx, tf->rsi, tf->rdi);
	kprintf("# RBP %016lx  R8  %016lx  R9  %016lx\n", tf->rbp, tf->r8, tf->r9);
	kprintf("# R10 %016lx  R11 %016lx  R12 %016lx\n", tf->r10, tf->r11, tf->r12);
	kprintf("# R13 %016lx  R14 %016lx  R15 %016lx\n", tf->r13, tf->r14, tf->r15);
	kprintf("# CS %04lx SS %04lx CR0 %016lx CR3 %016lx CR4 %016lx\n", tf->cs, tf->ss,
	        read_cr0(), read_cr3(), read_cr4());
}

static void describe_page_fault(uint64_t err, char *buf, size_t size)
{
	snprintf(buf, size, "%s, %s, %s%s%s", err & 1 ? "protection violation" : "not present",
	         err & 2 ? "write" : "read", err & 4 ? "user" : "kernel",
	         err & 8 ? ", reserved bit set" : "", err & 16 ? ", instruction fetch" : "");
}

static __noreturn void fatal_exception(struct trapframe *tf)
{
	int v = (int)tf->vector;
	char why[160];

	console_break_lock();
	smp_stop_others();
	if (v == VEC_PF) {
		char desc[96];
		uint64_t cr2 = read_cr2();
		describe_page_fault(tf->error, desc, sizeof(desc));
		snprintf(why, sizeof(why), "exception %s at CR2=%016lx (%s) on CPU %d",
		         exception_name(v), cr2, desc, smp_processor_id());
	} else {
		snprintf(why, sizeof(why), "exception %s (vector %d, error %#lx) on CPU %d",
		         exception_name(v), v, tf->error, smp_processor_id());
	}
	kprintf("# %s\n", why);
	dump_trapframe(tf);
	backtrace_trap(tf->rip, tf->rsp, tf->rbp);
	ktest_bail_out(why);
}

static bool try_fault_catch(struct trapframe *tf)
{
	struct cpu *c = this_cpu();
	struct fault_catch *fc = c->fault;

	if (!fc || tf->vector == VEC_DF || tf->vector == VEC_MC)
		return false;
	c->fault = NULL; /* one shot: a second fault in the test is fatal */
	fc->vector = (int)tf->vector;
	fc->error = tf->error;
	fc->cr2 = tf->vector == VEC_PF ? read_cr2() : 0;
	fc->rip = tf->rip;
	tf->rbx = fc->jb.rbx;
	tf->rbp = fc->jb.rbp;
	tf->r12 = fc->jb.r12;
	tf->r13 = fc->jb.r13;
	tf->r14 = fc->jb.r14;
	tf->r15 = fc->jb.r15;
	tf->rsp = fc->jb.rsp;
	tf->rip = fc->jb.rip;
	tf->rax = 1 + tf->vector;
	return true;
}

void trap(struct trapframe *tf)
{
	int v = (int)tf->vector;

	if (v == VEC_NMI) {
		bool handled = false;
		for (int i = 0; i < MAX_NMI_HANDLERS && nmi_handlers[i]; i++)
			handled |= nmi_handlers[i](tf);
		if (!handled)
			kprintf("# unexpected NMI on CPU %d at %016lx\n", smp_processor_id(),
			        tf->rip);
		return;
	}
	if (v < 32) {
		if (try_fault_catch(tf))
			return;
		fatal_exception(tf);
	}
	this_cpu()->irq_depth++;
	irq_entry_hook();
	sched_irq_enter();
	if (irq_handlers[v])
		irq_handlers[v](tf);
	else
		kprintf("# unexpected interrupt %d on CPU %d\n", v, smp_processor_id());
	this_cpu()->irq_depth--;
	/* iretq re-enables interrupts without local_irq_enable: run its hook here. */
	if (tf->rflags & RFLAGS_IF)
		irq_enable_hook();
	/* The way out of an interrupt: a preemption point under preempt=full and rt. */
	sched_irq_exit(tf);
}

unsigned long local_irq_save(void)
{
	unsigned long flags = read_rflags();
	__asm__ volatile("cli" ::: "memory");
	return flags;
}

void local_irq_restore(unsigned long flags)
{
	if (flags & RFLAGS_IF)
		local_irq_enable();
}

void __attribute__((weak)) irq_enable_hook(void)
{
}

/* Before every interrupt handler (kernel/mm: a CPU leaving idle catches up on TLB flushes). */
void __attribute__((weak)) irq_entry_hook(void)
{
}

/* Until the scheduler is linked in, interrupts return where they came from. */
void __attribute__((weak)) sched_irq_enter(void)
{
}

void __attribute__((weak)) sched_irq_exit(struct trapframe *tf)
{
	(void)tf;
}
