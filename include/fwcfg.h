/* fwcfg.h - QEMU's fw_cfg interface: the runner's command line file (kernel/fwcfg.c). */
#ifndef LOCKLAB_FWCFG_H
#define LOCKLAB_FWCFG_H

#include "types.h"

/* The fw_cfg signature answers: we run under QEMU with fw_cfg. */
bool fw_cfg_present(void);
/*
 * Read fw_cfg file `name` into buf (NUL-terminated, truncated to size - 1).
 * Returns the file's full length, or -1 when there is no such file.
 */
long fw_cfg_read_file(const char *name, char *buf, size_t size);

#endif
