; 32-bit entry from GRUB (multiboot2) and the switch to long mode.
;
; GRUB leaves us in 32-bit protected mode, paging off, EAX = magic, EBX =
; physical address of the boot information.  We check that this is a 64-bit
; CPU, build the early page tables, enable long mode and jump to the
; higher-half kernel.  The early tables map, with 2 MiB pages:
;   0 .. 4 GiB  identity            (this code, the AP trampoline, LAPIC MMIO)
;   0 .. 4 GiB  at PHYS_MAP_BASE    (the kernel's direct map of physical memory)
;   0 .. 1 GiB  at KERNEL_VMA       (the kernel image, linked at -2 GiB)
; kernel/mm replaces them once the memory map is known.

KERNEL_VMA	equ 0xffffffff80000000
COM1		equ 0x3f8

global _start
global early_pml4
global mb_magic
global mb_info
extern kmain
extern cpus
global boot_stack_top

section .boot.text
bits 32
_start:
	cli
	cld
	mov esp, early_stack_top
	mov [mb_magic], eax
	mov [mb_info], ebx

	cmp eax, 0x36d76289
	jne .not_multiboot2

	; CPUID must have the extended leaf with long mode (LM, bit 29).
	mov eax, 0x80000000
	cpuid
	cmp eax, 0x80000001
	jb .no_long_mode
	mov eax, 0x80000001
	cpuid
	test edx, 1 << 29
	jz .no_long_mode
	mov [ext_features], edx

	; Clear the table area, then fill it.
	mov edi, early_tables
	mov ecx, (7 * 4096) / 4
	xor eax, eax
	rep stosd

	; PML4[0] and PML4[256] share the low PDPT; PML4[511] -> high PDPT.
	mov eax, pdpt_low
	or eax, 3
	mov [early_pml4], eax
	mov [early_pml4 + 256 * 8], eax
	mov eax, pdpt_high
	or eax, 3
	mov [early_pml4 + 511 * 8], eax

	; pdpt_low[0..3] -> pd0..pd3 ; pdpt_high[510] -> pd0 (first GiB).
	mov eax, pd0
	or eax, 3
	mov [pdpt_low], eax
	mov [pdpt_high + 510 * 8], eax
	mov eax, pd0 + 4096
	or eax, 3
	mov [pdpt_low + 8], eax
	mov eax, pd0 + 2 * 4096
	or eax, 3
	mov [pdpt_low + 16], eax
	mov eax, pd0 + 3 * 4096
	or eax, 3
	mov [pdpt_low + 24], eax

	; 2048 large-page entries covering 0..4 GiB.
	mov edi, pd0
	xor ecx, ecx
.fill_pd:
	mov eax, ecx
	shl eax, 21
	or eax, 0x83			; present, writable, 2 MiB
	mov [edi + ecx * 8], eax
	mov eax, ecx
	shr eax, 11			; bits 32+ of the address
	mov [edi + ecx * 8 + 4], eax
	inc ecx
	cmp ecx, 2048
	jne .fill_pd

	; PAE + PGE, then CR3, then EFER.LME (+NXE when the CPU has NX).
	mov eax, cr4
	or eax, (1 << 5) | (1 << 7)
	mov cr4, eax
	mov eax, early_pml4
	mov cr3, eax
	mov ecx, 0xc0000080
	rdmsr
	or eax, 1 << 8
	test dword [ext_features], 1 << 20
	jz .no_nx
	or eax, 1 << 11
.no_nx:
	wrmsr
	mov eax, cr0
	or eax, (1 << 31) | (1 << 16) | 1	; PG, WP, PE
	mov cr0, eax

	lgdt [early_gdt_ptr]
	jmp 0x08:long_mode

; Without long mode there is nothing to run; say so on COM1 in KTAP terms.
.not_multiboot2:
	mov esi, msg_not_mb2
	jmp .fail
.no_long_mode:
	mov esi, msg_no_lm
.fail:
	mov dx, COM1 + 5
.wait:
	in al, dx
	test al, 0x20
	jz .wait
	mov dx, COM1
	lodsb
	test al, al
	jz .halt
	out dx, al
	jmp .fail
.halt:
	hlt
	jmp .halt

bits 64
long_mode:
	mov ax, 0x10
	mov ds, ax
	mov es, ax
	mov ss, ax
	xor ax, ax
	mov fs, ax
	mov gs, ax
	mov rax, higher_half
	jmp rax

section .boot.data
align 16
early_gdt:
	dq 0
	dq 0x00af9a000000ffff		; 0x08: 64-bit code
	dq 0x00cf92000000ffff		; 0x10: data
early_gdt_ptr:
	dw early_gdt_ptr - early_gdt - 1
	dq early_gdt
mb_magic:	dd 0
mb_info:	dd 0
ext_features:	dd 0
msg_not_mb2:	db "KTAP version 1", 13, 10, "Bail out! not started by a multiboot2 loader", 13, 10, 0
msg_no_lm:	db "KTAP version 1", 13, 10, "Bail out! this CPU has no long mode (x86-64 required)", 13, 10, 0

section .boot.bss nobits alloc write
align 4096
early_tables:
early_pml4:	resb 4096
pdpt_low:	resb 4096
pdpt_high:	resb 4096
pd0:		resb 4 * 4096
early_stack:	resb 4096
early_stack_top:

section .text
bits 64
higher_half:
	mov rsp, boot_stack_top
	xor ebp, ebp
	push rbp			; a zero return address ends backtraces
	; GS holds the boot CPU's struct cpu from here on (cpu_init sets it again
	; with the GDT), with its self pointer: this_cpu(), smp_processor_id()
	; and the inline lock fast path work from the first line of C.
	mov ecx, 0xc0000101		; IA32_GS_BASE
	mov rax, cpus
	mov [rax], rax			; cpus[0].self
	mov rdx, rax
	shr rdx, 32
	wrmsr
	mov edi, [mb_magic]
	mov esi, [mb_info]
	call kmain
.hang:
	cli
	hlt
	jmp .hang

; The boot CPU's kernel stack (the APs get theirs from kernel/apic/smpboot.c),
; with a page of its own below it that kernel/mm leaves unmapped: an overflow
; faults instead of running into other data.
global boot_stack_guard
section .bss
align 4096
boot_stack_guard:	resb 4096
boot_stack:	resb 16384
boot_stack_top:
