/* The parts of the multiboot2 boot information locklab uses. */
#ifndef LOCKLAB_MULTIBOOT_H
#define LOCKLAB_MULTIBOOT_H

#include "console.h"
#include "types.h"

#define MB2_BOOTLOADER_MAGIC 0x36d76289

enum mmap_type {
	MMAP_USABLE = 1,
	MMAP_RESERVED = 2,
	MMAP_ACPI_RECLAIMABLE = 3,
	MMAP_ACPI_NVS = 4,
	MMAP_BAD = 5,
};

struct mmap_entry {
	uint64_t base;
	uint64_t length;
	uint32_t type;
};

#define MAX_MMAP_ENTRIES 128

struct boot_info {
	uint64_t mbi_phys; /* where GRUB put the boot information */
	uint32_t mbi_size;
	const char *cmdline; /* NULL when there was no command-line tag */
	const char *loader;
	struct mmap_entry mmap[MAX_MMAP_ENTRIES];
	int mmap_count;
	const void *rsdp;  /* copy of the RSDP inside the boot information */
	int rsdp_revision; /* 0: ACPI 1.0 tag (14), 2: ACPI 2.0+ tag (15) */
	bool have_fb;      /* a framebuffer tag: the screen console draws there */
	struct fb_info fb;
	bool efi;   /* booted by UEFI (an EFI system table tag) */
	int errors; /* malformed tags seen */
};

extern struct boot_info boot_info;

/* Parse the boot information; messages go to the console. */
int multiboot_parse(uint32_t magic, uint64_t mbi_phys);

#endif
