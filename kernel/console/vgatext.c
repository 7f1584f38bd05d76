/*
 * The VGA text-mode screen (0xb8000) for BIOS boots without a framebuffer:
 * each cell is a character and a colour byte; the adapter's own font draws
 * it.  The verdict banner is made of full-block characters, the built-in
 * font's letters at half height (one cell per two pixel rows), 8 cells wide.
 */
#include "kernel.h"
#include "mm.h"
#include "screen.h"

#define BLOCK 0xdb /* code page 437 full block */

static struct vgatext {
	struct screen s;
	volatile uint16_t *cells;
	char label[40];
} vga;

static void put(struct vgatext *v, int x, int y, uint8_t ch, uint8_t colour)
{
	v->cells[y * v->s.cols + x] = (uint16_t)(ch | colour << 8);
}

static void draw_cell(struct screen *s, int x, int y, char ch, uint8_t colour)
{
	put((struct vgatext *)s, x, y, (uint8_t)ch, colour);
}

static int banner_rows(struct screen *s, int letters)
{
	(void)s;
	(void)letters;
	return FONT_HEIGHT / 2 + 2;
}

static void draw_banner(struct screen *s, const char *word, uint8_t colour)
{
	struct vgatext *v = (struct vgatext *)s;
	int letters = (int)strlen(word);
	int x0 = (s->cols - letters * 9) / 2;
	uint8_t fg = (uint8_t)((colour >> 4) | (colour >> 4) << 4); /* block in the band colour */

	for (int y = 1; y < 1 + banner_rows(s, letters); y++)
		for (int x = 0; x < s->cols; x++)
			put(v, x, y, ' ', 0x0f);
	for (int i = 0; i < letters && x0 >= 0; i++) {
		unsigned char ch = (unsigned char)word[i];
		if (ch < FONT_FIRST || ch >= FONT_FIRST + FONT_GLYPHS)
			ch = '?';
		const uint8_t *glyph = font8x16[ch - FONT_FIRST];
		for (int row = 0; row < FONT_HEIGHT / 2; row++) {
			uint8_t bits = glyph[2 * row] | glyph[2 * row + 1];
			for (int b = 0; b < 8; b++)
				if (bits & (0x80 >> b))
					put(v, x0 + i * 9 + b, 2 + row, BLOCK, fg);
		}
	}
}

struct console *vgatext_init(uint64_t addr, uint32_t cols, uint32_t rows)
{
	if (addr == 0 || cols < 40 || rows < 12 || cols > SCREEN_MAX_COLS ||
	    rows > SCREEN_MAX_ROWS) {
		kprintf("# screen: text mode %ux%u at %#lx is unusable; no screen\n", cols, rows,
		        addr);
		return NULL;
	}
	vga.cells = phys_to_virt(addr);
	vga.s.draw = draw_cell;
	vga.s.banner_rows = banner_rows;
	vga.s.draw_banner = draw_banner;
	snprintf(vga.label, sizeof(vga.label), "VGA text %ux%u", cols, rows);
	screen_start(&vga.s, (int)cols, (int)rows, vga.label);
	return &vga.s.con;
}
