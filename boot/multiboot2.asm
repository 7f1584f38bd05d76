; The multiboot2 header GRUB looks for in the first 32 KiB of the image.
; The load addresses come from the ELF program headers.  One request: a
; framebuffer (optional, 1024x768x32 preferred) for the screen console.
; GRUB sets a graphics mode under BIOS unless gfxpayload=text is set after
; the multiboot2 command (iso/grub.cfg: locklab_gfxpayload), in which case it
; reports EGA text and the kernel writes VGA text at 0xb8000; under UEFI it
; passes the GOP framebuffer.

section .multiboot
align 8
header_start:
	dd 0xe85250d6			; magic
	dd 0				; architecture: i386 protected mode
	dd header_end - header_start
	dd -(0xe85250d6 + 0 + (header_end - header_start))
	align 8
	dw 5				; framebuffer tag
	dw 1				; optional: boot without one too
	dd 20
	dd 1024				; width
	dd 768				; height
	dd 32				; depth
	align 8
	dw 0				; end tag
	dw 0
	dd 8
header_end:
