/*
 * The multiboot2 boot information: command line, memory map, ACPI RSDP and
 * the framebuffer (for the screen console).
 * Tags are checked against the total size before they are read, so a
 * malformed structure gives a message instead of a fault.
 */
#include "multiboot.h"
#include "kernel.h"
#include "mm.h"

#define TAG_END 0
#define TAG_CMDLINE 1
#define TAG_LOADER 2
#define TAG_MMAP 6
#define TAG_FRAMEBUFFER 8
#define TAG_EFI32 11
#define TAG_EFI64 12
#define TAG_ACPI_OLD 14
#define TAG_ACPI_NEW 15
#define MBI_MAX_SIZE (1u << 20)

struct tag {
	uint32_t type;
	uint32_t size;
};

struct boot_info boot_info;

static void bad(const char *what)
{
	kprintf("# multiboot2: %s\n", what);
	boot_info.errors++;
}

/* A tag's string must be NUL-terminated inside the tag. */
static const char *tag_string(const struct tag *t)
{
	const char *s = (const char *)(t + 1);
	size_t max = t->size - sizeof(*t);
	return strnlen(s, max) < max ? s : NULL;
}

static void parse_framebuffer(const struct tag *t)
{
	const uint8_t *p = (const uint8_t *)t;
	struct fb_info *fb = &boot_info.fb;

	if (t->size < 31) {
		bad("framebuffer tag too short");
		return;
	}
	memset(fb, 0, sizeof(*fb));
	fb->addr = *(const uint64_t *)(p + 8);
	fb->pitch = *(const uint32_t *)(p + 16);
	fb->width = *(const uint32_t *)(p + 20);
	fb->height = *(const uint32_t *)(p + 24);
	fb->bpp = p[28];
	fb->type = p[29];
	if (fb->type == 1 && t->size >= 38) {
		fb->red_pos = p[32];
		fb->red_size = p[33];
		fb->green_pos = p[34];
		fb->green_size = p[35];
		fb->blue_pos = p[36];
		fb->blue_size = p[37];
	}
	boot_info.have_fb = true;
}

static void parse_mmap(const struct tag *t)
{
	const uint8_t *p = (const uint8_t *)t;
	uint32_t entry_size = *(const uint32_t *)(p + 8);

	if (t->size < 16 || entry_size < 24 || entry_size % 8) {
		bad("memory map tag malformed (entry size or tag size)");
		return;
	}
	for (uint32_t off = 16; off + entry_size <= t->size; off += entry_size) {
		if (boot_info.mmap_count == MAX_MMAP_ENTRIES) {
			bad("memory map has more entries than locklab keeps; rest ignored");
			return;
		}
		struct mmap_entry *e = &boot_info.mmap[boot_info.mmap_count++];
		e->base = *(const uint64_t *)(p + off);
		e->length = *(const uint64_t *)(p + off + 8);
		e->type = *(const uint32_t *)(p + off + 16);
	}
}

int multiboot_parse(uint32_t magic, uint64_t mbi_phys)
{
	if (magic != MB2_BOOTLOADER_MAGIC) {
		bad("bad boot loader magic (not multiboot2)");
		return -1;
	}
	if (mbi_phys == 0 || (mbi_phys & 7)) {
		bad("boot information pointer is null or misaligned");
		return -1;
	}
	const uint8_t *mbi = phys_to_virt(mbi_phys);
	uint32_t total = *(const uint32_t *)mbi;
	if (total < 16 || total > MBI_MAX_SIZE) {
		bad("boot information total size is implausible");
		return -1;
	}
	boot_info.mbi_phys = mbi_phys;
	boot_info.mbi_size = total;

	bool ended = false;
	for (uint32_t off = 8; off + sizeof(struct tag) <= total;) {
		const struct tag *t = (const struct tag *)(mbi + off);
		if (t->size < sizeof(struct tag) || off + t->size > total) {
			bad("tag runs past the end of the boot information");
			break;
		}
		switch (t->type) {
		case TAG_END:
			ended = true;
			break;
		case TAG_CMDLINE:
			boot_info.cmdline = tag_string(t);
			if (!boot_info.cmdline)
				bad("command-line tag is not NUL-terminated");
			break;
		case TAG_LOADER:
			boot_info.loader = tag_string(t);
			break;
		case TAG_MMAP:
			parse_mmap(t);
			break;
		case TAG_FRAMEBUFFER:
			parse_framebuffer(t);
			break;
		case TAG_EFI32:
		case TAG_EFI64:
			boot_info.efi = true;
			break;
		case TAG_ACPI_OLD:
		case TAG_ACPI_NEW:
			/* Prefer the ACPI 2.0+ copy when GRUB gives both. */
			if (t->size < sizeof(*t) + 20) {
				bad("ACPI RSDP tag too short");
			} else if (t->type == TAG_ACPI_NEW || !boot_info.rsdp) {
				boot_info.rsdp = t + 1;
				boot_info.rsdp_revision = t->type == TAG_ACPI_NEW ? 2 : 0;
			}
			break;
		default:
			break; /* modules, EFI memory map and handles: not used */
		}
		if (ended)
			break;
		off += ALIGN_UP(t->size, 8);
	}
	if (!ended)
		bad("no end tag");
	if (boot_info.mmap_count == 0)
		bad("no memory map tag");
	return boot_info.errors ? -1 : 0;
}
