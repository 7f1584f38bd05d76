/*
 * arch_host.c - futex halt/kick, backtraces and panic for the host build.
 *
 * halt/kick: every CPU owns a kick word.  arch_kick_cpu(c) increments c's word
 * and FUTEX_WAKEs it.  arch_halt_if(word, old) first snapshots its own kick
 * word, then re-checks *word == old, then FUTEX_WAITs on the kick word for the
 * snapshot value.  No wake-up is lost: a kicker changes the lock word before
 * it bumps the kick word (both seq_cst).  If the bump came before our
 * snapshot, so did the lock-word change, and the re-check sees it; if it came
 * after, FUTEX_WAIT finds a different value or is woken.  The wait still has
 * a timeout of a few ms as a safety net; such timeouts are counted.
 *
 * Empty on the kernel build.
 */
#ifdef LOCKLAB_HOST
#define _GNU_SOURCE
#include "arch.h"

#include <errno.h>
#include <execinfo.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HOST_HALT_TIMEOUT_NS 5000000l /* 5 ms safety net */

__thread int arch_host_cpu;
int arch_host_ncpus = 1;
unsigned int arch_host_yield_every;
__thread unsigned int arch_host_spins;

static struct {
	uint32_t word;
} __lock_aligned kick[LOCK_MAX_CPUS];

static pthread_t cpu_thread[LOCK_MAX_CPUS];
static bool cpu_thread_set[LOCK_MAX_CPUS];
static struct arch_host_stats stats;
static int dump_done;

static long futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

static void dump_signal(int sig)
{
	(void)sig;
	char msg[64];
	void *pc[48];
	int n = snprintf(msg, sizeof(msg), "CPU#%d backtrace:\n", arch_host_cpu);

	if (write(2, msg, (size_t)n) < 0) {
	}
	backtrace_symbols_fd(pc, backtrace(pc, 48), 2);
	__atomic_store_n(&dump_done, 1, __ATOMIC_RELEASE);
}

static void install_dump_signal(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = dump_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
}

void arch_host_set_cpu(int cpu)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	void *pc[2];

	if (cpu < 0 || cpu >= LOCK_MAX_CPUS)
		arch_host_panic("arch_host_set_cpu: cpu %d out of range", cpu);
	arch_host_cpu = cpu;
	__atomic_store_n(&cpu_thread[cpu], pthread_self(), __ATOMIC_RELEASE);
	__atomic_store_n(&cpu_thread_set[cpu], true, __ATOMIC_RELEASE);
	backtrace(pc, 2); /* load libgcc now, not inside a signal handler */
	pthread_once(&once, install_dump_signal);
}

void arch_host_set_num_cpus(int n)
{
	arch_host_ncpus = n;
}

void arch_host_yield(void)
{
	sched_yield();
}

void arch_halt_if(const uint32_t *word, uint32_t old)
{
	uint32_t *kw = &kick[arch_host_cpu].word;
	uint32_t seq = __atomic_load_n(kw, __ATOMIC_SEQ_CST);
	struct timespec ts = {0, HOST_HALT_TIMEOUT_NS};

	if (__atomic_load_n(word, __ATOMIC_SEQ_CST) != old)
		return;
	__atomic_fetch_add(&stats.halts, 1, __ATOMIC_RELAXED);
	if (futex(kw, FUTEX_WAIT_PRIVATE, seq, &ts) < 0 && errno == ETIMEDOUT)
		__atomic_fetch_add(&stats.halt_timeouts, 1, __ATOMIC_RELAXED);
}

void arch_kick_cpu(int cpu)
{
	uint32_t *kw = &kick[cpu].word;

	__atomic_fetch_add(&stats.kicks, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(kw, 1, __ATOMIC_SEQ_CST);
	futex(kw, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

void arch_host_get_stats(struct arch_host_stats *out)
{
	out->halts = __atomic_load_n(&stats.halts, __ATOMIC_RELAXED);
	out->halt_timeouts = __atomic_load_n(&stats.halt_timeouts, __ATOMIC_RELAXED);
	out->kicks = __atomic_load_n(&stats.kicks, __ATOMIC_RELAXED);
}

void arch_host_reset_stats(void)
{
	__atomic_store_n(&stats.halts, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&stats.halt_timeouts, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&stats.kicks, 0, __ATOMIC_RELAXED);
}

void arch_host_dump_stack(void)
{
	void *pc[48];

	fprintf(stderr, "CPU#%d backtrace:\n", arch_host_cpu);
	fflush(stderr);
	backtrace_symbols_fd(pc, backtrace(pc, 48), 2);
}

/* Ask the thread playing @cpu for its backtrace and wait (bounded) for it. */
void arch_dump_cpu_stack(int cpu)
{
	uint64_t end = arch_now_ns() + 500000000ull;

	if (cpu < 0 || cpu >= LOCK_MAX_CPUS ||
	    !__atomic_load_n(&cpu_thread_set[cpu], __ATOMIC_ACQUIRE)) {
		fprintf(stderr, "CPU#%d: no such CPU, no backtrace\n", cpu);
		return;
	}
	__atomic_store_n(&dump_done, 0, __ATOMIC_RELEASE);
	if (pthread_kill(__atomic_load_n(&cpu_thread[cpu], __ATOMIC_ACQUIRE), SIGUSR2)) {
		fprintf(stderr, "CPU#%d: thread gone, no backtrace\n", cpu);
		return;
	}
	while (!__atomic_load_n(&dump_done, __ATOMIC_ACQUIRE) && arch_now_ns() < end)
		usleep(1000);
}

int arch_host_printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vfprintf(stdout, fmt, ap);
	va_end(ap);
	fflush(stdout);
	return n;
}

_Noreturn void arch_host_panic(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "Kernel panic (CPU#%d): ", arch_host_cpu);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	fflush(stderr);
	abort();
}
#endif /* LOCKLAB_HOST */
