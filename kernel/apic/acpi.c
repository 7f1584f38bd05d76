/*
 * ACPI table discovery: the RSDP (from the boot loader's copy, else the
 * BIOS areas), the RSDT or XSDT, and from them the MADT (CPUs, I/O APICs,
 * interrupt source overrides) and the FADT (PM timer port).
 *
 * Firmware tables are input we do not control: every table's length and
 * checksum is checked before use, and a bad one is reported and skipped,
 * never trusted.  Without a usable MADT the kernel runs on the boot CPU
 * alone rather than guessing APIC IDs.
 */
#include "acpi.h"
#include "cpu.h"
#include "kernel.h"
#include "mm.h"
#include "multiboot.h"

struct rsdp {
	char signature[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_addr;
	/* ACPI 2.0+ */
	uint32_t length;
	uint64_t xsdt_addr;
	uint8_t ext_checksum;
	uint8_t reserved[3];
} __packed;

#define RSDP_V1_LEN 20
#define RSDP_V2_LEN 36
/* The biggest table we would checksum; anything larger is a corrupt length. */
#define ACPI_TABLE_MAX_LEN (4u << 20)
#define ACPI_MAX_TABLES 64

#define MADT_LAPIC 0
#define MADT_IOAPIC 1
#define MADT_OVERRIDE 2
#define MADT_LAPIC_ADDR 5
#define MADT_X2APIC 9
#define MADT_HEADER_LEN 44

/* FADT field offsets (ACPI 6.x, table 5.9). */
#define FADT_PM_TMR_BLK 76
#define FADT_PM_TMR_LEN 91
#define FADT_FLAGS 112
#define FADT_X_PM_TMR_BLK 208
#define FADT_FLAG_TMR_VAL_EXT (1u << 8)
#define GAS_SYSTEM_IO 1

struct acpi_info acpi;
static const struct acpi_sdt_header *tables[ACPI_MAX_TABLES];
static int ntables;
static const struct acpi_sdt_header *root_table;

static uint8_t sum_bytes(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t s = 0;
	while (n--)
		s += *b++;
	return s;
}

static const struct rsdp *rsdp_check(const void *p)
{
	const struct rsdp *r = p;

	if (memcmp(r->signature, "RSD PTR ", 8) != 0 || sum_bytes(r, RSDP_V1_LEN) != 0)
		return NULL;
	if (r->revision >= 2 &&
	    (r->length < RSDP_V2_LEN || r->length > 4096 || sum_bytes(r, r->length) != 0))
		return NULL;
	return r;
}

/* The BIOS puts the RSDP on a 16-byte boundary in the EBDA's first KiB or in E0000-FFFFF. */
static const struct rsdp *rsdp_scan(uint64_t start, uint64_t len)
{
	for (uint64_t pa = ALIGN_UP(start, 16); pa + RSDP_V2_LEN <= start + len; pa += 16) {
		const struct rsdp *r = rsdp_check(phys_to_virt(pa));
		if (r)
			return r;
	}
	return NULL;
}

static const struct rsdp *rsdp_find(const char **where)
{
	const struct rsdp *r;

	if (boot_info.rsdp && (r = rsdp_check(boot_info.rsdp))) {
		*where = "the boot loader";
		return r;
	}
	if (boot_info.rsdp)
		kprintf("# acpi: the boot loader's RSDP copy is invalid; scanning BIOS areas\n");
	volatile uint16_t *ebda_seg = phys_to_virt(0x40e); /* BIOS data area */
	uint64_t ebda = (uint64_t)*ebda_seg << 4;
	if (ebda >= 0x80000 && ebda < 0xa0000 && (r = rsdp_scan(ebda, 1024))) {
		*where = "the EBDA";
		return r;
	}
	if ((r = rsdp_scan(0xe0000, 0x20000))) {
		*where = "the BIOS area";
		return r;
	}
	return NULL;
}

/* A table we may read: mapped, a sane length, a zero checksum. */
const struct acpi_sdt_header *acpi_map_table(uint64_t pa, const char *expect)
{
	if (pa == 0) {
		kprintf("# acpi: a table pointer is null; skipped\n");
		return NULL;
	}
	if (pa + sizeof(struct acpi_sdt_header) > EARLY_PHYS_LIMIT) {
		kprintf("# acpi: table at %#lx is outside mapped memory; skipped\n", pa);
		return NULL;
	}
	const struct acpi_sdt_header *h = phys_to_virt(pa);
	if (expect && memcmp(h->signature, expect, 4) != 0) {
		kprintf("# acpi: expected %s at %#lx, found another signature; skipped\n", expect,
		        pa);
		return NULL;
	}
	if (h->length < sizeof(*h) || h->length > ACPI_TABLE_MAX_LEN ||
	    pa + h->length > EARLY_PHYS_LIMIT) {
		kprintf("# acpi: table %.4s at %#lx has a truncated or bad length (%u); skipped\n",
		        h->signature, pa, h->length);
		return NULL;
	}
	if (sum_bytes(h, h->length) != 0) {
		kprintf("# acpi: table %.4s at %#lx has a bad checksum; skipped\n", h->signature,
		        pa);
		return NULL;
	}
	return h;
}

static void collect_tables(const struct rsdp *r, const char *where)
{
	const struct acpi_sdt_header *root = NULL;
	size_t entry_size = 4;

	if (r->revision >= 2 && r->xsdt_addr) {
		root = acpi_map_table(r->xsdt_addr, "XSDT");
		entry_size = 8;
	}
	if (!root) {
		root = acpi_map_table(r->rsdt_addr, "RSDT");
		entry_size = 4;
	}
	if (!root) {
		kprintf("# acpi: neither XSDT nor RSDT usable\n");
		return;
	}
	root_table = root;
	size_t n = (root->length - sizeof(*root)) / entry_size;
	const uint8_t *e = (const uint8_t *)(root + 1);
	for (size_t i = 0; i < n; i++) {
		uint64_t pa = 0;
		memcpy(&pa, e + i * entry_size, entry_size); /* XSDT entries are unaligned */
		const struct acpi_sdt_header *h = acpi_map_table(pa, NULL);
		if (!h)
			continue;
		if (ntables == ACPI_MAX_TABLES) {
			kprintf("# acpi: more than %d tables; the rest ignored\n", ACPI_MAX_TABLES);
			break;
		}
		tables[ntables++] = h;
	}
	kprintf("# acpi: RSDP rev %d (OEM %s) from %s, %s at %#lx, %d valid tables\n", r->revision,
	        acpi.oem_id, where, entry_size == 8 ? "XSDT" : "RSDT", virt_to_phys(root), ntables);
}

/* Where the tables kept (and their root) live: the frame allocator keeps them out. */
void acpi_table_ranges(void (*fn)(uint64_t pa, uint64_t len))
{
	if (root_table)
		fn(virt_to_phys(root_table), root_table->length);
	for (int i = 0; i < ntables; i++)
		fn(virt_to_phys(tables[i]), tables[i]->length);
}

const struct acpi_sdt_header *acpi_find_table(const char *sig, int index)
{
	for (int i = 0; i < ntables; i++)
		if (memcmp(tables[i]->signature, sig, 4) == 0 && index-- == 0)
			return tables[i];
	return NULL;
}

static void add_cpu(struct acpi_info *out, uint32_t apic_id, uint32_t uid, uint32_t flags,
                    bool x2apic)
{
	/* Neither enabled nor online-capable: the firmware says it cannot be used. */
	if (!(flags & (ACPI_CPU_ENABLED | ACPI_CPU_ONLINE_CAPABLE)))
		return;
	for (int i = 0; i < out->ncpu; i++)
		if (out->cpu[i].apic_id == apic_id)
			return; /* firmware may list a CPU as both LAPIC and x2APIC */
	out->ncpu_seen++;
	if (flags & ACPI_CPU_ENABLED)
		out->ncpu_enabled++;
	if (out->ncpu == ACPI_MAX_CPU_ENTRIES)
		return;
	out->cpu[out->ncpu++] = (struct acpi_cpu){apic_id, uid, flags, x2apic};
}

static uint32_t ioapic_pins(uint32_t addr)
{
	volatile uint32_t *regs = phys_to_virt(addr);
	regs[0] = 1; /* IOAPICVER */
	return ((regs[4] >> 16) & 0xff) + 1;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

bool acpi_parse_madt(const struct acpi_sdt_header *madt, struct acpi_info *out)
{
	const uint8_t *base = (const uint8_t *)madt;

	if (madt->length < MADT_HEADER_LEN) {
		kprintf("# acpi: MADT truncated (%u bytes); skipped\n", madt->length);
		return false;
	}
	out->lapic_addr = rd32(base + 36);
	out->madt_flags = rd32(base + 40);
	for (uint32_t off = MADT_HEADER_LEN; off + 2 <= madt->length;) {
		const uint8_t *e = base + off;
		uint8_t type = e[0], len = e[1];
		static const uint8_t need[16] = {[MADT_LAPIC] = 8,
		                                 [MADT_IOAPIC] = 12,
		                                 [MADT_OVERRIDE] = 10,
		                                 [MADT_LAPIC_ADDR] = 12,
		                                 [MADT_X2APIC] = 16};
		if (len < 2 || off + len > madt->length) {
			kprintf(
			    "# acpi: MADT entry at offset %u overruns the table; rest ignored\n",
			    off);
			break;
		}
		off += len;
		if (type < 16 && len < need[type]) {
			kprintf("# acpi: MADT entry type %u too short (%u bytes); skipped\n", type,
			        len);
			continue;
		}
		switch (type) {
		case MADT_LAPIC:
			if (e[3] != 0xff) /* 0xff: the CPU is listed in an x2APIC entry */
				add_cpu(out, e[3], e[2], rd32(e + 4), false);
			break;
		case MADT_X2APIC:
			add_cpu(out, rd32(e + 4), rd32(e + 12), rd32(e + 8), true);
			break;
		case MADT_IOAPIC:
			if (out->nioapic < ACPI_MAX_IOAPICS) {
				out->ioapic[out->nioapic++] =
				    (struct acpi_ioapic){e[2], rd32(e + 4), rd32(e + 8), 0};
			}
			break;
		case MADT_OVERRIDE:
			if (out->noverride < ACPI_MAX_OVERRIDES) {
				uint16_t fl;
				memcpy(&fl, e + 8, 2);
				out->override[out->noverride++] =
				    (struct acpi_override){e[2], e[3], rd32(e + 4), fl};
			}
			break;
		case MADT_LAPIC_ADDR:
			memcpy(&out->lapic_addr, e + 4, 8);
			break;
		}
	}
	return true;
}

/* "0 1 2 3" for short lists, runs of more than four as "4-63". */
static void format_apic_ids(char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < acpi.ncpu && used + 16 < size; i++) {
		if (!(acpi.cpu[i].flags & ACPI_CPU_ENABLED))
			continue;
		int j = i;
		while (j + 1 < acpi.ncpu && acpi.cpu[j + 1].apic_id == acpi.cpu[j].apic_id + 1 &&
		       (acpi.cpu[j + 1].flags & ACPI_CPU_ENABLED))
			j++;
		if (j - i >= 4) {
			used += snprintf(buf + used, size - used, "%s%u-%u", used ? " " : "",
			                 acpi.cpu[i].apic_id, acpi.cpu[j].apic_id);
			i = j;
		} else {
			used += snprintf(buf + used, size - used, "%s%u", used ? " " : "",
			                 acpi.cpu[i].apic_id);
		}
	}
	if (used + 16 >= size)
		snprintf(buf + used, size - used, " ...");
}

static void madt_report(void)
{
	char ids[384];

	format_apic_ids(ids, sizeof(ids));
	kprintf("# acpi: MADT: %d CPU%s (APIC IDs %s), %d I/O APIC%s\n", acpi.ncpu_enabled,
	        acpi.ncpu_enabled == 1 ? "" : "s", ids, acpi.nioapic, acpi.nioapic == 1 ? "" : "s");
	if (acpi.ncpu_seen > acpi.ncpu_enabled)
		kprintf("# acpi: %d more CPU%s online-capable but not enabled (not started)\n",
		        acpi.ncpu_seen - acpi.ncpu_enabled,
		        acpi.ncpu_seen - acpi.ncpu_enabled == 1 ? "" : "s");
	if (acpi.ncpu_seen > acpi.ncpu)
		kprintf("# acpi: %d CPU entries beyond the %d kept; left parked\n",
		        acpi.ncpu_seen - acpi.ncpu, ACPI_MAX_CPU_ENTRIES);
	for (int i = 0; i < acpi.nioapic; i++) {
		const struct acpi_ioapic *io = &acpi.ioapic[i];
		kprintf("# acpi: I/O APIC id %u at %#x, GSI %u-%u\n", io->id, io->addr,
		        io->gsi_base, io->gsi_base + (io->pins ? io->pins - 1 : 0));
	}
	if (acpi.noverride) {
		char line[400];
		size_t used = snprintf(line, sizeof(line), "# acpi: ISA overrides:");
		for (int i = 0; i < acpi.noverride && used + 40 < sizeof(line); i++) {
			const struct acpi_override *o = &acpi.override[i];
			used += snprintf(line + used, sizeof(line) - used, " IRQ%u->GSI%u%s%s",
			                 o->source, o->gsi, (o->flags & 0xc) == 0xc ? " level" : "",
			                 (o->flags & 3) == 3 ? " low" : "");
		}
		kprintf("%s\n", line);
	}
}

static void fadt_parse(const struct acpi_sdt_header *fadt)
{
	const uint8_t *b = (const uint8_t *)fadt;
	uint32_t port = 0;

	if (fadt->length >= FADT_FLAGS + 4) {
		port = rd32(b + FADT_PM_TMR_BLK);
		if (b[FADT_PM_TMR_LEN] != 4)
			port = 0;
		acpi.pm_timer_32bit = rd32(b + FADT_FLAGS) & FADT_FLAG_TMR_VAL_EXT;
	}
	if (fadt->length >= FADT_X_PM_TMR_BLK + 12 && b[FADT_X_PM_TMR_BLK] == GAS_SYSTEM_IO) {
		uint64_t x;
		memcpy(&x, b + FADT_X_PM_TMR_BLK + 4, 8);
		if (x && x < 0x10000)
			port = (uint32_t)x;
	}
	acpi.pm_timer_port = port < 0x10000 ? (uint16_t)port : 0;
}

void acpi_init(void)
{
	const char *where = "";
	const struct rsdp *r = rsdp_find(&where);

	if (!r) {
		kprintf("# acpi: no RSDP (boot loader tag, EBDA, BIOS area); running on the boot "
		        "CPU alone\n");
		return;
	}
	acpi.rsdp_revision = r->revision;
	memcpy(acpi.oem_id, r->oem_id, 6);
	acpi.oem_id[6] = '\0';
	for (int i = 5; i > 0 && acpi.oem_id[i] == ' '; i--)
		acpi.oem_id[i] = '\0';
	collect_tables(r, where);

	const struct acpi_sdt_header *fadt = acpi_find_table("FACP", 0);
	if (fadt)
		fadt_parse(fadt);

	const struct acpi_sdt_header *madt;
	for (int i = 0; (madt = acpi_find_table("APIC", i)); i++)
		if ((acpi.have_madt = acpi_parse_madt(madt, &acpi)))
			break;
	if (!acpi.have_madt || acpi.ncpu_enabled == 0) {
		acpi.have_madt = false;
		kprintf("# acpi: no usable MADT; running on the boot CPU alone\n");
		return;
	}
	for (int i = 0; i < acpi.nioapic; i++) /* a 32-bit address: always in the direct map */
		acpi.ioapic[i].pins = ioapic_pins(acpi.ioapic[i].addr);
	madt_report();
}
