; The multiboot2 header GRUB looks for in the first 32 KiB of the image.
; Only the mandatory fields and the end tag: locklab asks for no framebuffer
; and takes the load addresses from the ELF program headers.

section .multiboot
align 8
header_start:
	dd 0xe85250d6			; magic
	dd 0				; architecture: i386 protected mode
	dd header_end - header_start
	dd -(0xe85250d6 + 0 + (header_end - header_start))
	align 8
	dw 0				; end tag
	dw 0
	dd 8
header_end:
