/*
 * PCI serial cards: find 16550-compatible UARTs (class 07, subclass 00) by
 * walking PCI configuration space through the legacy ports 0xcf8/0xcfc,
 * bus 0 and every bus behind a PCI-to-PCI bridge.  The UART's registers are
 * in its first BAR that is used: I/O space (QEMU's pci-serial, most cards)
 * or memory space.  Decoding is switched on in the command register in case
 * the firmware left the card off.
 */
#include "console.h"
#include "kernel.h"
#include "x86.h"

#define PCI_ADDR 0xcf8
#define PCI_DATA 0xcfc
#define PCI_MAX_BUSES 256

static uint32_t pci_read(int bus, int dev, int fn, int off)
{
	outl(PCI_ADDR, 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 |
	                   (uint32_t)(off & 0xfc));
	return inl(PCI_DATA);
}

static void pci_write(int bus, int dev, int fn, int off, uint32_t v)
{
	outl(PCI_ADDR, 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 |
	                   (uint32_t)(off & 0xfc));
	outl(PCI_DATA, v);
}

/* The UART's registers from its BARs; false if none is set up. */
static bool uart_from_bars(struct uart *u, int bus, int dev, int fn)
{
	for (int bar = 0; bar < 6; bar++) {
		uint32_t v = pci_read(bus, dev, fn, 0x10 + 4 * bar);
		if (v & 1) {
			if ((v & ~3u) == 0)
				continue;
			u->mmio = false;
			u->base = v & 0xfffcu;
			pci_write(bus, dev, fn, 0x04, pci_read(bus, dev, fn, 0x04) | 0x1);
			return true;
		}
		uint64_t addr = v & ~0xfu;
		if (((v >> 1) & 3) == 2) /* 64-bit BAR: the next one holds the high half */
			addr |= (uint64_t)pci_read(bus, dev, fn, 0x10 + 4 * ++bar) << 32;
		if (addr == 0)
			continue;
		u->mmio = true;
		u->base = addr;
		pci_write(bus, dev, fn, 0x04, pci_read(bus, dev, fn, 0x04) | 0x2);
		return true;
	}
	return false;
}

struct walk {
	int want; /* which UART (0: the first) */
	int seen;
	struct uart *u;
	bool visited[PCI_MAX_BUSES];
};

static bool walk_bus(struct walk *w, int bus)
{
	if (w->visited[bus])
		return false;
	w->visited[bus] = true;
	for (int dev = 0; dev < 32; dev++) {
		int fns = 1;
		for (int fn = 0; fn < fns; fn++) {
			uint32_t id = pci_read(bus, dev, fn, 0x00);
			if ((id & 0xffff) == 0xffff)
				continue;
			uint32_t hdr = pci_read(bus, dev, fn, 0x0c) >> 16 & 0xff;
			if (fn == 0 && (hdr & 0x80))
				fns = 8;
			uint32_t class = pci_read(bus, dev, fn, 0x08) >> 8; /* class:sub:prog-if */
			if ((class >> 8) == 0x0700 && w->seen++ == w->want)
				return uart_from_bars(w->u, bus, dev, fn);
			if ((hdr & 0x7f) == 1) { /* PCI-to-PCI bridge */
				int secondary = pci_read(bus, dev, fn, 0x18) >> 8 & 0xff;
				if (secondary && walk_bus(w, secondary))
					return true;
			}
		}
	}
	return false;
}

/* The index'th 16550-class PCI UART, set up in u (not probed yet). */
bool uart_pci_find(struct uart *u, int index)
{
	static struct walk w; /* 256 bytes of flags: not on the stack */

	memset(&w, 0, sizeof(w));
	w.want = index;
	w.u = u;
	return walk_bus(&w, 0);
}
