; The AP start-up trampoline: real mode -> protected mode -> long mode.
;
; A start-up IPI makes an AP begin executing in real mode at CS:IP =
; (vector << 8):0, so this code is copied to a page below 1 MiB and the
; SIPI vector names that page.  It is assembled into the kernel image
; (read-only) and must run wherever it is copied: every absolute address it
; needs (its GDT, the far-jump targets) it computes from CS at run time.
;
; The kernel fills trampoline_params in the copy before each SIPI.  Once
; the AP has loaded its stack, id and entry point it writes `ack`; from then
; on the kernel may reuse the parameters for the next AP.  Control reaches
; ap_main(id) on the AP's own stack, interrupts off, early page tables.

TR_CODE32	equ 0x08
TR_DATA		equ 0x10
TR_CODE64	equ 0x18

CR0_PE		equ 1 << 0
CR0_NE		equ 1 << 5
CR0_WP		equ 1 << 16
CR0_NW		equ 1 << 29
CR0_CD		equ 1 << 30
CR0_PG		equ 1 << 31
CR4_PAE		equ 1 << 5
CR4_PGE		equ 1 << 7
MSR_EFER	equ 0xc0000080

%define OFF(label) ((label) - trampoline_start)

global trampoline_start
global trampoline_end
global trampoline_params

section .rodata.trampoline progbits alloc noexec nowrite align=16

bits 16
trampoline_start:
	cli
	cld
	mov ax, cs
	mov ds, ax
	movzx ebx, ax
	shl ebx, 4			; linear address of this copy
	lea eax, [ebx + OFF(tr_gdt)]
	mov [OFF(tr_gdtr) + 2], eax
	lea eax, [ebx + OFF(tr_pm32)]
	mov [OFF(tr_pm_ptr)], eax
	lea eax, [ebx + OFF(tr_lm64)]
	mov [OFF(tr_lm_ptr)], eax
	o32 lgdt [OFF(tr_gdtr)]
	; INIT leaves the caches disabled (CD, NW): turn them back on.
	mov eax, cr0
	and eax, ~(CR0_CD | CR0_NW)
	or eax, CR0_PE
	mov cr0, eax
	jmp dword far [OFF(tr_pm_ptr)]

bits 32
tr_pm32:
	mov ax, TR_DATA
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov eax, cr4
	or eax, CR4_PAE | CR4_PGE
	mov cr4, eax
	mov eax, [ebx + OFF(tr_cr3)]
	mov cr3, eax
	mov ecx, MSR_EFER
	rdmsr
	or eax, [ebx + OFF(tr_efer)]	; LME, and NXE/SCE as on the boot CPU
	wrmsr
	mov eax, cr0
	or eax, CR0_PG | CR0_WP | CR0_NE | CR0_PE
	mov cr0, eax
	jmp far [ebx + OFF(tr_lm_ptr)]

bits 64
tr_lm64:
	mov ax, TR_DATA
	mov ds, ax
	mov es, ax
	mov ss, ax
	xor eax, eax
	mov fs, ax
	mov gs, ax
	mov ebx, ebx			; the upper half is undefined after the mode switch
	; An AP the kernel gave up on may still run this code later (a SIPI it
	; had pending survives the parking INIT under some emulators).  Only the
	; AP the parameters name may take them; any other parks itself here.
	mov r8, rbx
	xor eax, eax
	cpuid
	cmp eax, 0xb
	jb .legacy_apic_id
	mov eax, 0xb
	xor ecx, ecx
	cpuid
	test ebx, ebx			; leaf 0xb not implemented: EBX is 0
	jz .legacy_apic_id
	mov r9d, edx			; x2APIC ID
	jmp .have_apic_id
.legacy_apic_id:
	mov eax, 1
	cpuid
	shr ebx, 24			; initial APIC ID
	mov r9d, ebx
.have_apic_id:
	mov rbx, r8
	cmp r9d, [rbx + OFF(tr_apic_id)]
	jne .not_mine
	mov rsp, [rbx + OFF(tr_stack)]
	mov edi, [rbx + OFF(tr_cpu_id)]
	mov rax, [rbx + OFF(tr_entry)]
	mov ecx, [rbx + OFF(tr_seq)]
	mov [rbx + OFF(tr_ack)], ecx	; parameters taken: the kernel may reuse them
	xor ebp, ebp
	push rbp			; a zero return address ends backtraces
	jmp rax
.not_mine:
	cli
	hlt
	jmp .not_mine

align 8
tr_gdt:
	dq 0
	dq 0x00cf9a000000ffff		; 0x08: 32-bit code
	dq 0x00cf92000000ffff		; 0x10: data
	dq 0x00af9a000000ffff		; 0x18: 64-bit code
tr_gdt_end:

align 4
tr_gdtr:
	dw tr_gdt_end - tr_gdt - 1
	dd 0				; linear base, filled in at run time
	dw 0
tr_pm_ptr:
	dd 0				; linear address of tr_pm32
	dw TR_CODE32
	dw 0
tr_lm_ptr:
	dd 0				; linear address of tr_lm64
	dw TR_CODE64
	dw 0

; Filled in by the kernel (struct trampoline_params in smpboot.c).
align 8
trampoline_params:
tr_cr3:		dd 0
tr_efer:	dd 0
tr_entry:	dq 0
tr_stack:	dq 0
tr_cpu_id:	dd 0
tr_seq:		dd 0
tr_ack:		dd 0
tr_apic_id:	dd 0
trampoline_end:
