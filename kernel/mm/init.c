/*
 * mm_init: frames, then the kernel page tables (and the switch to them),
 * then the shootdown, the kmap window and guarded interrupt stacks for the
 * boot CPU.  Runs on the boot CPU with interrupts off, before the APs start
 * (their stacks come from kstack_alloc, and ap_main loads our CR3).
 */
#include "acpi.h"
#include "cpu.h"
#include "kernel.h"
#include "mm.h"
#include "mm/internal.h"
#include "time.h"
#include "tlb.h"

void acpi_table_ranges(void (*fn)(uint64_t pa, uint64_t len));

void mm_init(void)
{
	uint64_t t0 = arch_now_ns();
	struct frame_stats fs;

	frame_init();
	acpi_table_ranges(frame_reserve);
	paging_init();
	tlb_init();
	kmap_init();
	cpu_setup_ist_stacks(&cpus[0]);

	frame_stats(&fs);
	uint64_t ns = arch_now_ns() - t0;
	kprintf(
	    "# mm: %lu MiB in %lu frames (%lu MiB above 4 GiB), %lu MiB free; direct map "
	    "0-%lu GiB (%s pages above 4 GiB), NX %s, global pages %s; set up in %lu.%03lu ms\n",
	    fs.total / 256, fs.total, fs.above_4g / 256, fs.free / 256, phys_map_end >> 30,
	    cpu_has_1g ? "1 GiB" : "2 MiB", cpu_has_nx ? "on" : "off (the CPU has none)",
	    cpu_has_pge ? "on" : "off", ns / NSEC_PER_MSEC, ns % NSEC_PER_MSEC / 1000);
}
