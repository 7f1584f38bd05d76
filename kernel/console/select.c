/*
 * Which consoles the kernel uses: the console= option, ACPI's SPCR, the
 * defaults, and the screen from the boot information.
 *
 *   console=com1..com4            the legacy ports 0x3f8 0x2f8 0x3e8 0x2e8
 *   console=io:0xPORT[,BAUD]      a 16550 on I/O ports
 *   console=mmio:0xADDR[,BAUD[,REGSHIFT]]   memory-mapped (REGSHIFT 2: 32-bit)
 *   console=spcr                  what ACPI's SPCR table says
 *   console=pci                   the first PCI serial card (class 07/00)
 *   several, comma-separated:     console=com1,com2
 *
 * The kernel starts on COM1 before it has read anything.  With no console=
 * it moves to the SPCR port when the table exists, else stays on COM1, or,
 * when there is no COM1 either, uses the first PCI UART.  A bad console=
 * value is a config error and changes nothing, so the verdict still reaches
 * the default port.  A port that is named but absent is reported and left
 * out; if none is left, the default stays.
 */
#include "console.h"
#include "kernel.h"
#include "multiboot.h"

#define MAX_SERIAL 4
#define BAUD_BASE 115200

extern int config_errors;

static struct uart uarts[MAX_SERIAL];
static const uint16_t com_ports[] = {0x3f8, 0x2f8, 0x3e8, 0x2e8};

void console_config_error(const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kprintf("# config error: %s\n", msg);
	config_errors++;
}

/* One comma-separated field [s, s+n) as a number: hex after 0x, else decimal. */
static bool field_number(const char *s, size_t n, bool hex, uint64_t *out)
{
	uint64_t v = 0;
	int base = 10;

	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		n -= 2;
	} else if (hex) {
		return false; /* addresses are written 0x... */
	}
	if (n == 0 || n > 16)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                               : 99;
		if (d >= base)
			return false;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	*out = v;
	return true;
}

static bool baud_ok(uint64_t baud)
{
	return baud >= 50 && baud <= BAUD_BASE && BAUD_BASE % baud == 0;
}

struct item {
	enum { IT_PORT, IT_SPCR, IT_PCI } kind;
	struct uart u;
	char name[16];
};

/* Parse the whole value; false (and a config error) on the first bad part. */
static bool parse_spec(const char *spec, struct item *items, int *count)
{
	const char *p = spec;
	int n = 0;

	if (!*spec) {
		console_config_error("console= needs a value (com1..com4, io:, mmio:, spcr, pci)");
		return false;
	}
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		/* Numbers after io:/mmio: are its baud rate and register shift. */
		int params = 0, max_params = 0;
		struct item *it = &items[n];
		uint64_t v;

		if (n == MAX_SERIAL) {
			console_config_error("console=%s: more than %d consoles", spec, MAX_SERIAL);
			return false;
		}
		memset(it, 0, sizeof(*it));
		snprintf(it->name, sizeof(it->name), "%.*s", (int)len, p);
		if (len == 4 && memcmp(p, "com", 3) == 0 && p[3] >= '1' && p[3] <= '4') {
			it->u.base = com_ports[p[3] - '1'];
			it->u.baud = BAUD_BASE;
			max_params = 1;
		} else if (len > 3 && memcmp(p, "io:", 3) == 0) {
			if (!field_number(p + 3, len - 3, true, &v) || v > 0xfff8) {
				console_config_error(
				    "console=%s: '%.*s' is not an I/O port (io:0x3f8)", spec,
				    (int)len, p);
				return false;
			}
			it->u.base = v;
			it->u.baud = BAUD_BASE;
			max_params = 1;
		} else if (len > 5 && memcmp(p, "mmio:", 5) == 0) {
			if (!field_number(p + 5, len - 5, true, &v) || v == 0) {
				console_config_error(
				    "console=%s: '%.*s' is not an address (mmio:0xfe001000)", spec,
				    (int)len, p);
				return false;
			}
			it->u.mmio = true;
			it->u.base = v;
			it->u.baud = BAUD_BASE;
			max_params = 2;
		} else if (len == 4 && memcmp(p, "spcr", 4) == 0) {
			it->kind = IT_SPCR;
		} else if (len == 3 && memcmp(p, "pci", 3) == 0) {
			it->kind = IT_PCI;
			it->u.baud = BAUD_BASE;
		} else {
			console_config_error("console=%s: unknown console '%.*s' (com1..com4, "
			                     "io:0xPORT, mmio:0xADDR, spcr, pci)",
			                     spec, (int)len, p);
			return false;
		}
		p += len;
		while (*p == ',' && p[1] >= '0' && p[1] <= '9') {
			const char *f = p + 1;
			const char *fend = strchr(f, ',');
			size_t flen = fend ? (size_t)(fend - f) : strlen(f);
			if (params == max_params || !field_number(f, flen, false, &v)) {
				console_config_error("console=%s: unexpected '%.*s' after %s", spec,
				                     (int)flen, f, it->name);
				return false;
			}
			if (params == 0 && !baud_ok(v)) {
				console_config_error("console=%s: baud %lu does not divide %d",
				                     spec, v, BAUD_BASE);
				return false;
			}
			if (params == 1 && v > 3) {
				console_config_error("console=%s: register shift %lu (0..3)", spec,
				                     v);
				return false;
			}
			if (params == 0)
				it->u.baud = (uint32_t)v;
			else
				it->u.regshift = (int)v;
			params++;
			p = f + flen;
		}
		if (it->u.mmio)
			it->u.width = it->u.regshift == 2 ? 4 : 1;
		if (*p == ',') {
			p++;
			if (!*p) {
				console_config_error("console=%s: empty item at the end", spec);
				return false;
			}
		}
		n++;
	}
	*count = n;
	return true;
}

/* Probe the items' UARTs; returns how many are present (in list). */
static int probe_items(struct item *items, int n, struct console **list)
{
	int found = 0;

	for (int i = 0; i < n; i++) {
		struct item *it = &items[i];
		if (it->kind == IT_SPCR && !spcr_uart(&it->u, false))
			continue;
		if (it->kind == IT_PCI && !uart_pci_find(&it->u, 0)) {
			kprintf("# console: no PCI serial card (class 07/00)\n");
			continue;
		}
		bool twice = false;
		for (int j = 0; j < found; j++) {
			struct uart *o = (struct uart *)list[j];
			twice |= o->mmio == it->u.mmio && o->base == it->u.base;
		}
		if (twice)
			continue; /* console=com2,io:0x2f8: one port, written once */
		struct uart *u = console_find_uart(it->u.mmio, it->u.base);
		if (u) { /* already printing there (COM1): keep it as it is */
			list[found++] = &u->con;
			continue;
		}
		u = &uarts[found];
		*u = it->u;
		if (!uart_init(u, it->name)) {
			kprintf("# console: %s at %s %#lx is absent (no UART answers)\n", it->name,
			        it->u.mmio ? "mmio" : "io", it->u.base);
			continue;
		}
		list[found++] = &u->con;
	}
	return found;
}

static void use(struct console **list, int n, const char *why)
{
	char names[160] = "";
	size_t len = 0;

	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "",
		                        list[i]->name);
	kprintf("# console: now on %s (%s)\n", names, why);
	console_replace_serial(list, n);
}

void console_setup(const char *spec)
{
	static struct item items[MAX_SERIAL];
	struct console *list[MAX_SERIAL];
	int n = 0;

	if (spec && *spec && strcmp(spec, "default") != 0) {
		if (!parse_spec(spec, items, &n))
			return; /* config error: stay on the default console */
		int found = probe_items(items, n, list);
		if (found == 0)
			kprintf("# console: none of console=%s answers; staying on the default\n",
			        spec);
		else
			use(list, found, "console=");
		return;
	}
	memset(&items[0], 0, sizeof(items[0]));
	items[0].kind = IT_SPCR;
	strcpy(items[0].name, "spcr");
	if (spcr_uart(&items[0].u, true)) {
		items[0].kind = IT_PORT;
		if (probe_items(items, 1, list) == 1)
			use(list, 1, "ACPI SPCR");
		return;
	}
	if (console_present())
		return; /* COM1 */
	strcpy(items[0].name, "pci");
	items[0].u.baud = BAUD_BASE;
	items[0].kind = IT_PORT;
	if (uart_pci_find(&items[0].u, 0) && probe_items(items, 1, list) == 1)
		use(list, 1, "no COM1; first PCI serial card");
}

/* The screen: a framebuffer from the boot loader, else VGA text under BIOS. */
void console_screen_init(void)
{
	struct console *c = NULL;

	if (boot_info.have_fb && boot_info.fb.type == 2)
		c = vgatext_init(boot_info.fb.addr, boot_info.fb.width, boot_info.fb.height);
	else if (boot_info.have_fb)
		c = fbcon_init(&boot_info.fb);
	else if (!boot_info.efi)
		c = vgatext_init(0xb8000, 80, 25);
	else
		kprintf("# screen: none (UEFI without a framebuffer from the boot loader)\n");
	if (c) {
		console_add(c);
		kprintf("# screen: %s\n", c->name);
	}
}
