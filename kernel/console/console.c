/*
 * The console core: kprintf, the list of active consoles, and the log.
 *
 * Output is polled (no interrupts), so it works from any context, including
 * exception and NMI handlers.  kprintf formats a whole message first and
 * writes it under one lock, so lines from different CPUs never interleave.
 * The lock remembers its owner: a CPU that faults or takes an NMI while
 * printing writes through instead of deadlocking on itself.
 *
 * Every message goes to each active console (serial ports, a screen) and
 * into a log buffer.  The kernel starts on COM1 before it has read its
 * command line or ACPI; when console= or SPCR then names another port, the
 * new console is first sent the log, so it carries the whole report from
 * "KTAP version 1" on.  A machine with no console at all keeps running.
 */
#include "console.h"
#include "cmdline.h"
#include "cpu.h"
#include "kernel.h"
#include "time.h"
#include "x86.h"

#define LOG_SIZE (64 * 1024)

static char log_buf[LOG_SIZE];
static uint64_t log_end; /* bytes ever written; the buffer keeps the last LOG_SIZE */
static struct console *consoles;
static volatile int console_owner = -1;

static void log_append(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		log_buf[(log_end + i) % LOG_SIZE] = s[i];
	log_end += n;
}

/* Send the log to one console, oldest byte first. */
static void log_replay(struct console *c)
{
	uint64_t start = log_end > LOG_SIZE ? log_end - LOG_SIZE : 0;

	while (start < log_end) {
		size_t off = start % LOG_SIZE;
		size_t n = LOG_SIZE - off;
		if (n > log_end - start)
			n = log_end - start;
		c->write(c, log_buf + off, n);
		start += n;
	}
}

void console_init(void)
{
	static struct uart com1 = {.base = 0x3f8, .baud = 115200};

	if (uart_init(&com1, "com1"))
		console_add(&com1.con);
}

/* The active serial console on this port, if any (serial consoles are all UARTs). */
struct uart *console_find_uart(bool mmio, uint64_t base)
{
	for (struct console *c = consoles; c; c = c->next) {
		struct uart *u = (struct uart *)c;
		if (c->serial && u->mmio == mmio && u->base == base)
			return u;
	}
	return NULL;
}

bool console_present(void)
{
	for (struct console *c = consoles; c; c = c->next)
		if (c->serial)
			return true;
	return false;
}

void console_write(const char *s, size_t n)
{
	log_append(s, n);
	for (struct console *c = consoles; c; c = c->next)
		c->write(c, s, n);
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

/* Append c and give it everything printed so far. */
void console_add(struct console *c)
{
	unsigned long flags;
	bool taken = console_lock(&flags);
	struct console **p = &consoles;

	while (*p)
		p = &(*p)->next;
	c->next = NULL;
	log_replay(c);
	c->live = true;
	*p = c;
	console_unlock(taken, flags);
}

/*
 * The serial consoles become list[0..n); screens stay.  A console that was
 * already active (COM1 kept by console=com1,com2) is not sent the log again.
 */
void console_replace_serial(struct console **list, int n)
{
	unsigned long flags;
	bool taken = console_lock(&flags);
	struct console **p = &consoles;

	while (*p) {
		if ((*p)->serial) {
			(*p)->live = false;
			*p = (*p)->next;
		} else {
			p = &(*p)->next;
		}
	}
	for (int i = 0; i < n; i++) {
		list[i]->next = NULL;
		if (!list[i]->live)
			log_replay(list[i]);
		list[i]->live = true;
		*p = list[i];
		p = &list[i]->next;
	}
	console_unlock(taken, flags);
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

/*
 * Before the kernel exits or reboots: keep the verdict on the screen for
 * screen_hold= seconds, so the person at the machine can read it.
 */
void console_hold(void)
{
	bool screen = false;

	for (struct console *c = consoles; c; c = c->next)
		screen |= !c->serial;
	if (screen && config.screen_hold > 0)
		mdelay((uint64_t)config.screen_hold * 1000);
}
