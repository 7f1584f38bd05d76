/*
 * QEMU's fw_cfg interface (I/O ports 0x510/0x511), read for one file:
 * opt/locklab/cmdline, which the runner sets with
 * `-fw_cfg name=opt/locklab/cmdline,string=...` so options reach the kernel
 * without rebuilding the ISO.  On real hardware the signature check fails
 * and nothing is read.
 */
#include "fwcfg.h"
#include "kernel.h"
#include "x86.h"

#define FW_CFG_PORT_SEL 0x510
#define FW_CFG_PORT_DATA 0x511
#define FW_CFG_SIGNATURE 0x0000
#define FW_CFG_FILE_DIR 0x0019
#define FW_CFG_MAX_FILES 4096

static void fw_cfg_select(uint16_t key)
{
	outw(FW_CFG_PORT_SEL, key);
}

static void fw_cfg_read(void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n--)
		*p++ = inb(FW_CFG_PORT_DATA);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

bool fw_cfg_present(void)
{
	char sig[4];
	fw_cfg_select(FW_CFG_SIGNATURE);
	fw_cfg_read(sig, sizeof(sig));
	return memcmp(sig, "QEMU", 4) == 0;
}

/*
 * Copy the named file into buf (NUL-terminated, truncated to size-1).
 * Returns its full length, or -1 when there is no such file.
 */
long fw_cfg_read_file(const char *name, char *buf, size_t size)
{
	uint8_t count_be[4];

	if (!fw_cfg_present())
		return -1;
	fw_cfg_select(FW_CFG_FILE_DIR);
	fw_cfg_read(count_be, 4);
	uint32_t count = be32(count_be);
	if (count > FW_CFG_MAX_FILES)
		return -1;
	for (uint32_t i = 0; i < count; i++) {
		struct {
			uint8_t size[4];
			uint8_t select[2];
			uint16_t reserved;
			char name[56];
		} entry;
		fw_cfg_read(&entry, sizeof(entry));
		entry.name[55] = '\0';
		if (strcmp(entry.name, name) != 0)
			continue;
		uint32_t len = be32(entry.size);
		size_t n = len < size - 1 ? len : size - 1;
		fw_cfg_select((uint16_t)(entry.select[0] << 8 | entry.select[1]));
		fw_cfg_read(buf, n);
		buf[n] = '\0';
		return len;
	}
	return -1;
}
