/*
 * ACPI SPCR (Serial Port Console Redirection): where a server's firmware
 * put its console, usually the UART behind IPMI serial-over-LAN.  The table
 * gives the interface type, the register block as a Generic Address
 * Structure (I/O or memory space, register width) and a baud rate code.
 *
 * locklab drives 16550-compatible UARTs only (interface types 0, 1 and
 * 0x12); an ARM PL011 or another kind is reported and ignored, and the
 * kernel keeps its default console.  A 32-bit register width means the
 * registers are 4 bytes apart and want 32-bit accesses (regshift 2).
 */
#include "acpi.h"
#include "console.h"
#include "kernel.h"

#define SPCR_MIN_LEN 80
#define GAS_MEMORY 0
#define GAS_IO 1

struct spcr {
	struct acpi_sdt_header h;
	uint8_t interface_type;
	uint8_t reserved[3];
	uint8_t space_id; /* the Generic Address Structure of the registers */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size; /* 1 byte, 2 word, 3 dword, 4 qword; 0 undefined */
	uint64_t address;
	uint8_t interrupt_type;
	uint8_t irq;
	uint32_t gsi;
	uint8_t baud_code;
} __packed;

static uint32_t spcr_baud(uint8_t code)
{
	switch (code) {
	case 3:
		return 9600;
	case 4:
		return 19200;
	case 6:
		return 57600;
	case 7:
		return 115200;
	default:
		return 0; /* 0: "as is", what the firmware set; others are reserved */
	}
}

/* Fill u from SPCR.  quiet: no message when there is no table. */
bool spcr_uart(struct uart *u, bool quiet)
{
	const struct spcr *t = (const struct spcr *)acpi_find_table("SPCR", 0);

	if (!t) {
		if (!quiet)
			kprintf("# console: no ACPI SPCR table\n");
		return false;
	}
	if (t->h.length < SPCR_MIN_LEN) {
		kprintf("# console: SPCR is %u bytes, shorter than %d; ignored\n", t->h.length,
		        SPCR_MIN_LEN);
		return false;
	}
	if (t->interface_type != 0x00 && t->interface_type != 0x01 && t->interface_type != 0x12) {
		kprintf("# console: SPCR interface type %#x is not a 16550; ignored\n",
		        t->interface_type);
		return false;
	}
	if (t->address == 0 || (t->space_id != GAS_MEMORY && t->space_id != GAS_IO)) {
		kprintf("# console: SPCR address space %u at %#lx is unusable; ignored\n",
		        t->space_id, t->address);
		return false;
	}
	if (t->space_id == GAS_IO && t->address > 0xfff8) {
		kprintf("# console: SPCR I/O port %#lx out of range; ignored\n", t->address);
		return false;
	}
	memset(u, 0, sizeof(*u));
	u->mmio = t->space_id == GAS_MEMORY;
	u->base = t->address;
	u->regshift = t->bit_width == 32 ? 2 : 0;
	u->width = u->mmio && (t->access_size == 3 || t->bit_width == 32) ? 4 : 1;
	u->baud = spcr_baud(t->baud_code);
	kprintf("# console: SPCR: 16550 type %#x, %s %#lx, %u-bit registers, baud %u%s\n",
	        t->interface_type, u->mmio ? "mmio" : "io", u->base, t->bit_width, u->baud,
	        u->baud ? "" : " (as the firmware set it)");
	return true;
}
