/*
 * The tests that need a process of their own, and what runs in it.  A
 * LOCK_DEBUG panic ends the process that hits it, and the deliberately
 * broken lock must run without ThreadSanitizer (which would report it by
 * itself), so the suite re-runs this program (or its plain build) with
 * --child= and judges the exit status and the output.
 */
#define _GNU_SOURCE
#include "torture.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- child processes ---------------------------------------------------- */

/* Runs argv with stdout+stderr captured into buf; returns the wait status. */
static int run_child(char *const argv[], char *buf, size_t len, int timeout_ms)
{
	int fd[2], status = 0;
	size_t used = 0;
	pid_t pid;
	uint64_t end = arch_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	if (pipe(fd))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(fd[1], 1);
		dup2(fd[1], 2);
		close(fd[0]);
		close(fd[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fd[1]);
	for (;;) {
		struct pollfd p = {fd[0], POLLIN, 0};
		int64_t left = (int64_t)(end - arch_now_ns()) / 1000000;
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		n = read(fd[0], buf + used, len - 1 - used);
		if (n <= 0)
			break;
		used += (size_t)n;
		if (used >= len - 1)
			break;
	}
	buf[used] = 0;
	close(fd[0]);
	waitpid(pid, &status, 0);
	return status;
}

/* Child output becomes KTAP diagnostics. */
static void echo_diag(const char *buf)
{
	const char *p = buf;

	while (*p) {
		const char *e = strchr(p, '\n');
		int n = e ? (int)(e - p) : (int)strlen(p);

		if (!strncmp(p, "# ", 2))
			printf("%.*s\n", n, p);
		else
			printf("#   %.*s\n", n, p);
		p += n + (e ? 1 : 0);
	}
}

static char child_out[65536];

static __attribute__((unused)) bool died_of_abort(int st)
{
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

struct result t_debug_recursion(void)
{
#ifdef LOCK_DEBUG
	char *argv[] = {self_exe, "--child=recursion", NULL};
	int st = run_child(argv, child_out, sizeof(child_out), 20000);

	echo_diag(child_out);
	if (!died_of_abort(st) || !strstr(child_out, "recursive locking") ||
	    !strstr(child_out, "child.recursion"))
		return verdict(FAIL, "no recursion panic naming the lock");
	return passed();
#else
	return verdict(SKIP, "built without LOCK_DEBUG");
#endif
}

struct result t_debug_timeout(void)
{
#ifdef LOCK_DEBUG
	char *argv[] = {self_exe, "--child=timeout", NULL};
	int st = run_child(argv, child_out, sizeof(child_out), 20000);

	echo_diag(child_out);
	if (!died_of_abort(st) || !strstr(child_out, "spin-timeout") ||
	    !strstr(child_out, "held by CPU#1") || !strstr(child_out, "CPU#1 backtrace") ||
	    !strstr(child_out, "CPU#0 backtrace"))
		return verdict(FAIL,
		               "no spin-timeout panic naming the holder with both backtraces");
	return passed();
#else
	return verdict(SKIP, "built without LOCK_DEBUG");
#endif
}

int run_child_echo(char *const argv[], int timeout_ms)
{
	int st = run_child(argv, child_out, sizeof(child_out), timeout_ms);

	echo_diag(child_out);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* --child=...: run inside a fresh process. */
static struct ticket_lock C_lock = TICKET_LOCK_INIT("child.recursion");
static struct ticket_lock C_held = TICKET_LOCK_INIT("child.held");
static int c_holding;

static void *holder_thread(void *p)
{
	(void)p;
	arch_host_set_cpu(1);
	ticket_lock(&C_held);
	__atomic_store_n(&c_holding, 1, __ATOMIC_RELEASE);
	for (;;)
		sleep_ms(100);
	return NULL;
}

int child_main(const char *what)
{
	arch_host_set_num_cpus(2);
	arch_host_set_cpu(0);
	if (!strcmp(what, "recursion")) {
		ticket_lock(&C_lock);
		ticket_lock(&C_lock);
		printf("recursion not detected\n");
		return 1;
	}
	if (!strcmp(what, "timeout")) {
		pthread_t pt;

		lock_spin_timeout_ns = 200000000ull;
		pthread_create(&pt, NULL, holder_thread, NULL);
		while (!__atomic_load_n(&c_holding, __ATOMIC_ACQUIRE))
			sleep_ms(1);
		ticket_lock(&C_held);
		printf("spin-timeout not detected\n");
		return 1;
	}
	if (!strncmp(what, "type:", 5))
		return broken_type_main(what + 5, 10);
	fprintf(stderr, "unknown child %s\n", what);
	return 1;
}
