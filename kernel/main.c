/*
 * kmain: the boot CPU's path from the 64-bit entry to the test verdict.
 * Read top down: console, CPU tables, boot information, command line,
 * ACPI and the local APIC, time, the other CPUs, the scheduler, then the
 * tests.
 */
#include "acpi.h"
#include "apic.h"
#include "cmdline.h"
#include "console.h"
#include "cpu.h"
#include "fwcfg.h"
#include "kernel.h"
#include "ktest.h"
#include "kvm.h"
#include "lock_slowdown.h"
#include "mm.h"
#include "multiboot.h"
#include "sched.h"
#include "smp.h"
#include "time.h"
#include "trap.h"

#define FW_CFG_CMDLINE "opt/locklab/cmdline"

int config_errors;
static char cmdline[CMDLINE_MAX];

static void config_error(const char *msg, void *ctx)
{
	(void)ctx;
	kprintf("# config error: %s\n", msg);
}

/* GRUB may pass the kernel's path as the first word: that is not an option. */
static const char *skip_image_path(const char *s)
{
	while (*s == ' ')
		s++;
	if (*s == '/' || *s == '(') {
		while (*s && *s != ' ')
			s++;
	}
	return s;
}

/* The boot loader's command line, then QEMU's fw_cfg file: later keys win. */
static void build_cmdline(void)
{
	static char fw[CMDLINE_MAX];
	const char *boot = boot_info.cmdline ? skip_image_path(boot_info.cmdline) : "";
	long fw_len = fw_cfg_read_file(FW_CFG_CMDLINE, fw, sizeof(fw));

	if (fw_len >= (long)sizeof(fw))
		kprintf("# config error: fw_cfg command line is %ld bytes, over the %zu kept\n",
		        fw_len, sizeof(fw) - 1);
	snprintf(cmdline, sizeof(cmdline), "%s%s%s", boot, fw_len > 0 ? " " : "",
	         fw_len > 0 ? fw : "");
}

void kmain(uint32_t magic, uint32_t mbi_phys)
{
	console_init();
	gdt_init();
	idt_init();
	cpu_init(&cpus[0]);

	kprintf("KTAP version 1\n");
	kprintf("# locklab: x86-64 SMP lock laboratory\n");
	if (multiboot_parse(magic, mbi_phys) < 0 && boot_info.mmap_count == 0)
		ktest_bail_out("boot information unusable (no memory map)");
	console_screen_init();
	early_alloc_init();

	config_defaults(&config);
	build_cmdline();
	config_errors = cmdline_parse(cmdline, &config, config_error, NULL);
	kprintf("# cmdline: %s\n", cmdline);
	kprintf("# config: seed=%lu preempt=%s accel=%s clock=%s host_cpus=%d bench=%d\n",
	        config.seed, preempt_name(config.preempt), accel_name(config.accel),
	        clock_name(config.clock), config.host_cpus, config.bench);

	acpi_init();
	console_setup(config.console); /* console=, else ACPI SPCR, else COM1 */
	lapic_init();
	time_init();
	mm_init();
	kvm_pv_init(); /* after mm_init: maps its hypercall page */
	/* LOCK_SLOWDOWN builds only: after time_init, before the other CPUs */
	lock_slowdown_init();
	smp_boot_aps();
	watchdog_init();
	sched_init(); /* from here on this context is thread 0 ("main") of CPU 0 */

	ktest_run_all();
}
