/* Core kernel services: console output, panic, string helpers. */
#ifndef LOCKLAB_KERNEL_H
#define LOCKLAB_KERNEL_H

#include "types.h"

#define __printf(a, b) __attribute__((format(printf, a, b)))

int kprintf(const char *fmt, ...) __printf(1, 2);
int vkprintf(const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* Print a register dump and backtrace, "Bail out!", then leave the kernel. */
__noreturn void panic(const char *fmt, ...) __printf(1, 2);
void dump_stack(void);
void backtrace_from(uint64_t rbp, uint64_t rip);
/* From an interrupted context: also right when the function had no frame yet. */
void backtrace_trap(uint64_t rip, uint64_t rsp, uint64_t rbp);

#define BUG_ON(cond)                                                             \
	do {                                                                     \
		if (cond)                                                        \
			panic("BUG_ON(%s) at %s:%d", #cond, __FILE__, __LINE__); \
	} while (0)

void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
char *strcpy(char *dst, const char *src);
size_t strlcpy(char *dst, const char *src, size_t size);
bool glob_match(const char *pattern, const char *s);

/* Serial console (COM1). */
void console_init(void);
bool console_present(void);
void console_write(const char *s, size_t n);

/* "Bail out!" with the reason, the end marker, then exit code 2. */
__noreturn void ktest_bail_out(const char *why);
/* A dying CPU must print even if another CPU stopped while holding the console. */
void console_break_lock(void);

/* Leave the kernel: code 0 pass, 1 failures, 2 bail out (contract). */
__noreturn void kexit(int code);
/* Stop the other CPUs (NMI) before a bail-out; set by the SMP code. */
void smp_stop_others(void);

#endif
