/*
 * What locklab takes from the ACPI tables: the CPUs and interrupt
 * controllers the MADT lists, and the FADT's PM timer (a calibration source).
 */
#ifndef LOCKLAB_ACPI_H
#define LOCKLAB_ACPI_H

#include "types.h"

struct acpi_sdt_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	uint32_t creator_id;
	uint32_t creator_revision;
} __packed;

/* MADT Local APIC / Local x2APIC flags. */
#define ACPI_CPU_ENABLED 0x1
#define ACPI_CPU_ONLINE_CAPABLE 0x2

/* More entries than MAX_CPUS are kept so the surplus can be reported. */
#define ACPI_MAX_CPU_ENTRIES 512
#define ACPI_MAX_IOAPICS 16
#define ACPI_MAX_OVERRIDES 48

struct acpi_cpu {
	uint32_t apic_id;
	uint32_t uid;   /* ACPI processor UID */
	uint32_t flags; /* ACPI_CPU_* */
	bool x2apic;    /* from a Local x2APIC entry */
};

struct acpi_ioapic {
	uint32_t id;
	uint32_t addr; /* physical MMIO base */
	uint32_t gsi_base;
	uint32_t pins; /* redirection entries, read from the chip */
};

/* An interrupt source override: legacy ISA IRQ `source` arrives on `gsi`. */
struct acpi_override {
	uint8_t bus;
	uint8_t source;
	uint32_t gsi;
	uint16_t flags; /* MPS INTI polarity (bits 0-1) and trigger mode (bits 2-3) */
};

struct acpi_info {
	bool have_madt;
	int rsdp_revision;
	char oem_id[7];
	uint64_t lapic_addr; /* from the MADT (or its 64-bit override entry) */
	uint32_t madt_flags; /* bit 0: dual 8259 PICs present */

	struct acpi_cpu cpu[ACPI_MAX_CPU_ENTRIES];
	int ncpu;         /* entries kept in cpu[] */
	int ncpu_seen;    /* every processor entry, kept or not */
	int ncpu_enabled; /* usable now (ACPI_CPU_ENABLED) */

	struct acpi_ioapic ioapic[ACPI_MAX_IOAPICS];
	int nioapic;
	struct acpi_override override[ACPI_MAX_OVERRIDES];
	int noverride;

	uint16_t pm_timer_port; /* 0: none */
	bool pm_timer_32bit;
};

extern struct acpi_info acpi;

void acpi_init(void);
/*
 * The table at physical address `pa` if its length and checksum are sound
 * (and its signature is `sig`, unless NULL); otherwise says why and gives NULL.
 */
const struct acpi_sdt_header *acpi_map_table(uint64_t pa, const char *sig);
/*
 * Parse a MADT into `out` (which the caller zeroes): CPUs deduplicated by
 * APIC ID, unusable ones dropped; a malformed entry ends or skips parsing
 * with a message.  False if the table is too short to be a MADT.
 */
bool acpi_parse_madt(const struct acpi_sdt_header *madt, struct acpi_info *out);
/* The `index`-th valid table with this signature, or NULL. */
const struct acpi_sdt_header *acpi_find_table(const char *sig, int index);

#endif
