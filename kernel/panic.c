/*
 * panic(), register dumps and frame-pointer backtraces with symbol names.
 *
 * The kernel is built with -fno-omit-frame-pointer, so every frame starts
 * with the caller's rbp and the return address.  The walk stops at a zero
 * rbp (the entry code plants one), at a misaligned or non-kernel address,
 * or after MAX_FRAMES, so a corrupted stack cannot make it loop or fault.
 */
#include "cpu.h"
#include "kernel.h"
#include "mm.h"
#include "symbols.h"
#include "trap.h"
#include "x86.h"

#define MAX_FRAMES 32

const char *ksym_lookup(uint64_t addr, uint64_t *offset)
{
	uint64_t lo = 0, hi = ksyms_count;

	if (ksyms_count == 0 || addr < ksyms[0].addr || addr >= (uint64_t)_etext)
		return NULL;
	while (hi - lo > 1) {
		uint64_t mid = (lo + hi) / 2;
		if (ksyms[mid].addr <= addr)
			lo = mid;
		else
			hi = mid;
	}
	if (offset)
		*offset = addr - ksyms[lo].addr;
	return ksyms[lo].name;
}

static void print_frame(int depth, uint64_t rip)
{
	uint64_t off = 0;
	const char *name = ksym_lookup(rip, &off);

	if (name)
		kprintf("#  #%-2d %016lx %s+%#lx\n", depth, rip, name, off);
	else
		kprintf("#  #%-2d %016lx ?\n", depth, rip);
}

/* A frame pointer we may dereference: 8-aligned, in the kernel's own memory. */
static bool plausible_frame(uint64_t rbp)
{
	if (rbp & 7)
		return false;
	if (rbp >= KERNEL_VMA && rbp < (uint64_t)_kernel_end)
		return mm_addr_mapped(rbp) || !mm_kernel_cr3(); /* not the boot stack's guard */
	/* Kernel stacks, with unmapped guard pages between them. */
	if (rbp >= VMAP_BASE && rbp < VMAP_BASE + VMAP_SIZE)
		return mm_addr_mapped(rbp) && mm_addr_mapped(rbp + 8);
	return rbp >= PHYS_MAP_BASE && rbp < PHYS_MAP_BASE + phys_map_end;
}

void backtrace_from(uint64_t rbp, uint64_t rip)
{
	kprintf("# backtrace (CPU %d):\n", smp_processor_id());
	print_frame(0, rip);
	for (int depth = 1; depth < MAX_FRAMES && plausible_frame(rbp); depth++) {
		uint64_t *frame = (uint64_t *)rbp;
		uint64_t ret = frame[1];
		if (ret == 0)
			break;
		print_frame(depth, ret);
		if (frame[0] <= rbp) /* stacks grow down: callers are higher */
			break;
		rbp = frame[0];
	}
}

/*
 * A leaf function may not set up a frame at all (GCC drops it when nothing
 * needs the stack).  If the faulting function's prologue "push rbp; mov
 * rbp, rsp" has not run, its caller's return address is still at [rsp]:
 * print that frame too, or the backtrace would skip the caller.
 */
void backtrace_trap(uint64_t rip, uint64_t rsp, uint64_t rbp)
{
	uint64_t off = 0;
	const char *name = ksym_lookup(rip, &off);
	const uint8_t *start = (const uint8_t *)(rip - off);
	bool framed = name && start[0] == 0x55 && start[1] == 0x48 && start[2] == 0x89 &&
	              start[3] == 0xe5 && off >= 4;

	if (framed || !plausible_frame(rsp)) {
		backtrace_from(rbp, rip);
		return;
	}
	kprintf("# backtrace (CPU %d):\n", smp_processor_id());
	print_frame(0, rip);
	uint64_t ret = *(uint64_t *)rsp;
	int depth = 1;
	if (ksym_lookup(ret, NULL))
		print_frame(depth++, ret);
	for (; depth < MAX_FRAMES && plausible_frame(rbp); depth++) {
		uint64_t *frame = (uint64_t *)rbp;
		if (frame[1] == 0)
			break;
		print_frame(depth, frame[1]);
		if (frame[0] <= rbp)
			break;
		rbp = frame[0];
	}
}

void dump_stack(void)
{
	uint64_t rbp = (uint64_t)__builtin_frame_address(0);
	uint64_t *frame = (uint64_t *)rbp;
	/* Start at our caller: dump_stack itself is noise. */
	backtrace_from(frame[0], frame[1]);
}

static void dump_current_registers(void)
{
	struct trapframe tf = {0};

	__asm__ volatile("mov %%rax, %0\n\tmov %%rbx, %1\n\tmov %%rcx, %2\n\tmov %%rdx, %3"
	                 : "=m"(tf.rax), "=m"(tf.rbx), "=m"(tf.rcx), "=m"(tf.rdx));
	__asm__ volatile("mov %%rsi, %0\n\tmov %%rdi, %1\n\tmov %%rbp, %2\n\tmov %%rsp, %3"
	                 : "=m"(tf.rsi), "=m"(tf.rdi), "=m"(tf.rbp), "=m"(tf.rsp));
	__asm__ volatile("mov %%r8, %0\n\tmov %%r9, %1\n\tmov %%r10, %2\n\tmov %%r11, %3"
	                 : "=m"(tf.r8), "=m"(tf.r9), "=m"(tf.r10), "=m"(tf.r11));
	__asm__ volatile("mov %%r12, %0\n\tmov %%r13, %1\n\tmov %%r14, %2\n\tmov %%r15, %3"
	                 : "=m"(tf.r12), "=m"(tf.r13), "=m"(tf.r14), "=m"(tf.r15));
	__asm__ volatile("leaq (%%rip), %0\n\tmov %%cs, %1\n\tmov %%ss, %2"
	                 : "=r"(tf.rip), "=r"(tf.cs), "=r"(tf.ss));
	tf.rflags = read_rflags();
	dump_trapframe(&tf);
}

static volatile int panicking = -1;

__noreturn void panic(const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	int me = smp_processor_id();
	int expected = -1;

	__asm__ volatile("cli");
	if (!__atomic_compare_exchange_n(&panicking, &expected, me, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_RELAXED)) {
		/* Someone (maybe us, recursively) is already reporting: stay out of it. */
		for (;;)
			halt();
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	console_break_lock();
	smp_stop_others();
	kprintf("# panic on CPU %d: %s\n", me, msg);
	dump_current_registers();
	dump_stack();
	ktest_bail_out(msg);
}

void __attribute__((weak)) smp_stop_others(void)
{
}
