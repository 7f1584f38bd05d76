/*
 * Consoles: where kprintf's text goes.  Several can be active at once
 * (serial ports and a screen); kprintf writes every message to all of them.
 * Every byte also goes into a log buffer, so a console added later (the port
 * console= or ACPI's SPCR names, the screen once the boot information is
 * read) first receives everything printed before it existed.
 */
#ifndef LOCKLAB_CONSOLE_H
#define LOCKLAB_CONSOLE_H

#include "types.h"

struct console {
	const char *name;
	void (*write)(struct console *c, const char *s, size_t n);
	bool serial; /* replaced by console=; screens stay */
	bool live;   /* in the active list (has had the log) */
	struct console *next;
};

/* A 16550-compatible UART, on I/O ports or memory-mapped. */
struct uart {
	struct console con;
	bool mmio;
	uint64_t base;          /* I/O port or physical address */
	volatile uint8_t *regs; /* mapped registers (MMIO) */
	int regshift;           /* register i is at base + (i << regshift) */
	int width;              /* MMIO access size in bytes: 1 or 4 */
	uint32_t baud;          /* 0: keep what the firmware set */
	char label[40];
};

/* Core (kernel/console/console.c). */
void console_add(struct console *c);
void console_replace_serial(struct console **list, int n);
struct uart *console_find_uart(bool mmio, uint64_t base);
void console_config_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 16550 UARTs (kernel/console/uart16550.c). */
/* Probe and program u (mmio/base/regshift/width/baud set); false if absent. */
bool uart_init(struct uart *u, const char *name);
bool uart_pci_find(struct uart *u, int index);

/* ACPI SPCR (kernel/apic/spcr.c): fills u from the table; false if none or unusable. */
bool spcr_uart(struct uart *u, bool quiet);

/* Screens (kernel/console/fbcon.c, vgatext.c). */
struct fb_info {
	uint64_t addr;
	uint32_t pitch, width, height;
	uint8_t bpp;
	uint8_t type; /* 0 indexed, 1 RGB, 2 EGA text */
	uint8_t red_pos, red_size, green_pos, green_size, blue_pos, blue_size;
};
struct console *fbcon_init(const struct fb_info *fb);
struct console *vgatext_init(uint64_t addr, uint32_t cols, uint32_t rows);

#define FONT_FIRST 0x20
#define FONT_GLYPHS 95
#define FONT_HEIGHT 16
extern const uint8_t font8x16[FONT_GLYPHS][FONT_HEIGHT];

/* Set up by kmain: screens from the boot information, then console= (or SPCR). */
void console_screen_init(void);
void console_setup(const char *spec);
/* Keep the verdict on the screen for screen_hold= seconds (kexit). */
void console_hold(void);

#endif
