/* The kernel's own function table, generated at build time, for backtraces. */
#ifndef LOCKLAB_SYMBOLS_H
#define LOCKLAB_SYMBOLS_H

#include "types.h"

struct ksym {
	uint64_t addr;
	const char *name;
};

extern const struct ksym ksyms[];
extern const uint64_t ksyms_count;

/* Name of the function containing addr and the offset into it, or NULL. */
const char *ksym_lookup(uint64_t addr, uint64_t *offset);

#endif
