/*
 * The serial console: a 16550 UART on COM1 at 115200 8N1, and kprintf.
 *
 * Output is polled (no interrupts), so it works from any context, including
 * exception and NMI handlers.  kprintf formats a whole message first and
 * writes it under one lock, so lines from different CPUs never interleave.
 * The lock remembers its owner: a CPU that faults or takes an NMI while
 * printing writes through instead of deadlocking on itself.  A machine with
 * no UART (real hardware without COM1) keeps running, silently.
 */
#include "cpu.h"
#include "kernel.h"
#include "x86.h"

#define COM1 0x3f8
#define UART_DATA 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_SCRATCH 7
#define LSR_THR_EMPTY 0x20
/* ~1 ms at 115200 baud per byte; more means the UART is gone or stuck. */
#define TX_SPIN_LIMIT 100000

static bool uart_present;
static volatile int console_owner = -1;

void console_init(void)
{
	/* Scratch register, then loopback: a floating bus reads back 0xff. */
	outb(COM1 + UART_SCRATCH, 0x5a);
	if (inb(COM1 + UART_SCRATCH) != 0x5a)
		return;
	outb(COM1 + UART_IER, 0x00);
	outb(COM1 + UART_LCR, 0x80);  /* DLAB: divisor follows */
	outb(COM1 + UART_DATA, 0x01); /* 115200 / 1 */
	outb(COM1 + 1, 0x00);
	outb(COM1 + UART_LCR, 0x03); /* 8N1 */
	outb(COM1 + UART_FCR, 0xc7); /* FIFOs on, cleared, 14-byte threshold */
	outb(COM1 + UART_MCR, 0x1e); /* loopback */
	outb(COM1 + UART_DATA, 0xae);
	if (inb(COM1 + UART_DATA) != 0xae)
		return;
	outb(COM1 + UART_MCR, 0x0b); /* normal: DTR, RTS, OUT2 */
	uart_present = true;
}

bool console_present(void)
{
	return uart_present;
}

static void uart_putc(char c)
{
	for (int i = 0; i < TX_SPIN_LIMIT; i++) {
		if (inb(COM1 + UART_LSR) & LSR_THR_EMPTY) {
			outb(COM1 + UART_DATA, (uint8_t)c);
			return;
		}
		cpu_relax();
	}
}

void console_write(const char *s, size_t n)
{
	if (!uart_present)
		return;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			uart_putc('\r');
		uart_putc(s[i]);
	}
}

/* Returns false when this CPU already holds the lock (nested: write through). */
static bool console_lock(unsigned long *flags)
{
	int me = smp_processor_id();

	*flags = read_rflags();
	__asm__ volatile("cli" ::: "memory");
	if (__atomic_load_n(&console_owner, __ATOMIC_RELAXED) == me)
		return false;
	int expected = -1;
	while (!__atomic_compare_exchange_n(&console_owner, &expected, me, false, __ATOMIC_ACQUIRE,
	                                    __ATOMIC_RELAXED)) {
		expected = -1;
		cpu_relax();
	}
	return true;
}

static void console_unlock(bool taken, unsigned long flags)
{
	if (taken)
		__atomic_store_n(&console_owner, -1, __ATOMIC_RELEASE);
	if (flags & RFLAGS_IF)
		__asm__ volatile("sti" ::: "memory");
}

/* A panicking CPU must print even if another CPU died holding the lock. */
void console_break_lock(void)
{
	__atomic_store_n(&console_owner, -1, __ATOMIC_RELEASE);
}

int vkprintf(const char *fmt, va_list ap)
{
	char buf[512];
	unsigned long flags;
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t len = n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1;

	bool taken = console_lock(&flags);
	console_write(buf, len);
	console_unlock(taken, flags);
	return n;
}

int kprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vkprintf(fmt, ap);
	va_end(ap);
	return n;
}
