/*
 * 16550-compatible UARTs: the legacy COM ports, PCI serial cards and the
 * memory-mapped UARTs servers describe in ACPI's SPCR.  One driver for all:
 * registers are bytes at base + (index << regshift), reached through I/O
 * ports or MMIO (byte or 32-bit accesses; many SoC UARTs decode only 32-bit
 * ones).  Polled, 8N1, FIFOs on.
 *
 * Probing must never hang on a port that is not there.  An empty I/O port
 * or an unclaimed MMIO range reads back 0xff (or 0): the scratch register
 * test catches it, and a loopback byte proves a UART is really behind it.
 */
#include "console.h"
#include "kernel.h"
#include "mm.h"
#include "x86.h"

#define UART_DATA 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_SCRATCH 7
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY 0x20
#define UART_CLOCK_BAUD 115200 /* 1.8432 MHz / 16: divisor 1 */
/* ~1 ms at 115200 baud per byte; more means the UART is gone or stuck. */
#define TX_SPIN_LIMIT 100000
#define LOOPBACK_SPIN_LIMIT 1000

static uint8_t uart_in(struct uart *u, int reg)
{
	uint64_t off = (uint64_t)reg << u->regshift;

	if (!u->mmio)
		return inb((uint16_t)(u->base + off));
	if (u->width == 4)
		return (uint8_t) * (volatile uint32_t *)(u->regs + off);
	return u->regs[off];
}

static void uart_out(struct uart *u, int reg, uint8_t v)
{
	uint64_t off = (uint64_t)reg << u->regshift;

	if (!u->mmio)
		outb((uint16_t)(u->base + off), v);
	else if (u->width == 4)
		*(volatile uint32_t *)(u->regs + off) = v;
	else
		u->regs[off] = v;
}

static void uart_putc(struct uart *u, char c)
{
	for (int i = 0; i < TX_SPIN_LIMIT; i++) {
		if (uart_in(u, UART_LSR) & LSR_THR_EMPTY) {
			uart_out(u, UART_DATA, (uint8_t)c);
			return;
		}
		cpu_relax();
	}
}

static void uart_write(struct console *c, const char *s, size_t n)
{
	struct uart *u = (struct uart *)c;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			uart_putc(u, '\r');
		uart_putc(u, s[i]);
	}
}

/* Loopback: a byte sent comes back on the receive side if a UART is there. */
static bool uart_loopback_ok(struct uart *u)
{
	for (int i = 0; i < 64 && (uart_in(u, UART_LSR) & LSR_DATA_READY); i++)
		(void)uart_in(u, UART_DATA); /* drop stale input */
	uart_out(u, UART_MCR, 0x1e);         /* loopback */
	uart_out(u, UART_DATA, 0xae);
	for (int i = 0; i < LOOPBACK_SPIN_LIMIT; i++) {
		if (uart_in(u, UART_LSR) & LSR_DATA_READY)
			return uart_in(u, UART_DATA) == 0xae;
		cpu_relax();
	}
	return false;
}

bool uart_init(struct uart *u, const char *name)
{
	if (u->mmio) {
		if (u->base == 0 || u->base >= phys_map_end)
			return false; /* not in the direct map */
		u->regs = phys_to_virt(u->base);
	}
	if (u->width != 4)
		u->width = 1;
	/* Scratch register: a floating bus reads back 0xff (or 0). */
	uart_out(u, UART_SCRATCH, 0x5a);
	if (uart_in(u, UART_SCRATCH) != 0x5a)
		return false;
	uart_out(u, UART_SCRATCH, 0xa5);
	if (uart_in(u, UART_SCRATCH) != 0xa5)
		return false;
	uart_out(u, UART_IER, 0x00);
	if (u->baud) {
		uint32_t div = UART_CLOCK_BAUD / u->baud;
		uart_out(u, UART_LCR, 0x80); /* DLAB: divisor follows */
		uart_out(u, UART_DATA, (uint8_t)div);
		uart_out(u, UART_IER, (uint8_t)(div >> 8));
	}
	uart_out(u, UART_LCR, 0x03); /* 8N1 */
	uart_out(u, UART_FCR, 0xc7); /* FIFOs on, cleared, 14-byte threshold */
	bool ok = uart_loopback_ok(u);
	uart_out(u, UART_MCR, 0x0b); /* normal: DTR, RTS, OUT2 */
	if (!ok)
		return false;
	if (u->mmio)
		snprintf(u->label, sizeof(u->label), "%s (mmio %#lx regshift %d, %d-byte)", name,
		         u->base, u->regshift, u->width);
	else
		snprintf(u->label, sizeof(u->label), "%s (io %#lx)", name, u->base);
	u->con.name = u->label;
	u->con.write = uart_write;
	u->con.serial = true;
	return true;
}
