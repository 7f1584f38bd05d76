/*
 * The framebuffer console: text drawn with the built-in 8x16 font on the
 * linear framebuffer the boot loader set up (GRUB's gfxpayload under BIOS,
 * the GOP mode under UEFI).  Direct colour at 32, 24 or 16 bits per pixel;
 * an indexed-colour or other depth is refused with a message, not guessed.
 * The grid, scrolling and verdict layout are screen.c's; this file only
 * turns cells and the banner into pixels.
 */
#include "kernel.h"
#include "mm.h"
#include "screen.h"

#define BANNER_MAX_SCALE 8

static struct fbcon {
	struct screen s; /* first: the console is the screen is the fbcon */
	uint8_t *base;
	uint32_t pitch, width, height;
	int bytes; /* per pixel */
	uint32_t palette[16];
	char label[48];
} fbcon;

/* The 16 VGA colours, as 8-bit R, G, B. */
static const uint8_t vga_rgb[16][3] = {
    {0, 0, 0},     {0, 0, 170},     {0, 170, 0},    {0, 170, 170},   {170, 0, 0},   {170, 0, 170},
    {170, 85, 0},  {170, 170, 170}, {85, 85, 85},   {85, 85, 255},   {85, 255, 85}, {85, 255, 255},
    {255, 85, 85}, {255, 85, 255},  {255, 255, 85}, {255, 255, 255},
};

static uint32_t channel(uint8_t v, uint8_t pos, uint8_t size)
{
	return size >= 8 ? (uint32_t)v << pos : (uint32_t)(v >> (8 - size)) << pos;
}

static void put_pixel(struct fbcon *f, uint32_t x, uint32_t y, uint32_t v)
{
	uint8_t *p = f->base + (uint64_t)y * f->pitch + (uint64_t)x * (uint32_t)f->bytes;

	if (f->bytes == 4) {
		*(volatile uint32_t *)p = v;
	} else if (f->bytes == 3) {
		p[0] = (uint8_t)v;
		p[1] = (uint8_t)(v >> 8);
		p[2] = (uint8_t)(v >> 16);
	} else {
		*(volatile uint16_t *)p = (uint16_t)v;
	}
}

static void fill(struct fbcon *f, uint32_t x0, uint32_t y0, uint32_t w, uint32_t h, uint32_t v)
{
	for (uint32_t y = y0; y < y0 + h && y < f->height; y++)
		for (uint32_t x = x0; x < x0 + w && x < f->width; x++)
			put_pixel(f, x, y, v);
}

static void draw_cell(struct screen *s, int cx, int cy, char ch, uint8_t colour)
{
	struct fbcon *f = (struct fbcon *)s;
	uint32_t fg = f->palette[colour & 15], bg = f->palette[colour >> 4];
	const uint8_t *glyph = font8x16[(unsigned char)ch - FONT_FIRST];
	uint32_t x0 = (uint32_t)cx * 8, y0 = (uint32_t)cy * FONT_HEIGHT;

	for (uint32_t row = 0; row < FONT_HEIGHT; row++) {
		uint8_t bits = glyph[row];
		if (f->bytes == 4) {
			volatile uint32_t *p =
			    (volatile uint32_t *)(f->base + (uint64_t)(y0 + row) * f->pitch) + x0;
			for (int b = 0; b < 8; b++)
				p[b] = bits & (0x80 >> b) ? fg : bg;
		} else {
			for (uint32_t b = 0; b < 8; b++)
				put_pixel(f, x0 + b, y0 + row, bits & (0x80 >> b) ? fg : bg);
		}
	}
}

static int scale_for(struct fbcon *f, int letters)
{
	int scale = letters ? (int)(f->width - 16) / (8 * letters) : 1;
	if (scale > BANNER_MAX_SCALE)
		scale = BANNER_MAX_SCALE;
	return scale < 1 ? 1 : scale;
}

static int banner_rows(struct screen *s, int letters)
{
	return scale_for((struct fbcon *)s, letters) + 1;
}

/* The word in the font scaled up, in the banner's colours, centred. */
static void draw_banner(struct screen *s, const char *word, uint8_t colour)
{
	struct fbcon *f = (struct fbcon *)s;
	int letters = (int)strlen(word);
	uint32_t scale = (uint32_t)scale_for(f, letters);
	uint32_t rows = (uint32_t)banner_rows(s, letters);
	uint32_t fg = f->palette[colour & 15], bg = f->palette[colour >> 4];
	uint32_t x0 = (f->width - (uint32_t)letters * 8 * scale) / 2;
	uint32_t y0 = FONT_HEIGHT + (rows * FONT_HEIGHT - FONT_HEIGHT * scale) / 2;

	fill(f, 0, FONT_HEIGHT, f->width, rows * FONT_HEIGHT, bg);
	for (int i = 0; i < letters; i++) {
		unsigned char ch = (unsigned char)word[i];
		if (ch < FONT_FIRST || ch >= FONT_FIRST + FONT_GLYPHS)
			ch = '?';
		const uint8_t *glyph = font8x16[ch - FONT_FIRST];
		for (uint32_t row = 0; row < FONT_HEIGHT; row++)
			for (uint32_t b = 0; b < 8; b++)
				if (glyph[row] & (0x80 >> b))
					fill(f, x0 + ((uint32_t)i * 8 + b) * scale,
					     y0 + row * scale, scale, scale, fg);
	}
}

struct console *fbcon_init(const struct fb_info *fb)
{
	struct fbcon *f = &fbcon;
	uint8_t rp = fb->red_pos, rs = fb->red_size, gp = fb->green_pos, gs = fb->green_size;
	uint8_t bp = fb->blue_pos, bs = fb->blue_size;

	if (fb->type != 1 || (fb->bpp != 32 && fb->bpp != 24 && fb->bpp != 16)) {
		kprintf("# screen: framebuffer %ux%u type %u at %u bits per pixel: only direct "
		        "colour at 16, 24 or 32 bpp is drawn; no screen\n",
		        fb->width, fb->height, fb->type, fb->bpp);
		return NULL;
	}
	uint64_t size = (uint64_t)fb->pitch * fb->height;
	if (fb->addr == 0 || fb->addr + size > phys_map_end || fb->width < 64 || fb->height < 64 ||
	    fb->pitch < fb->width * (fb->bpp / 8u)) {
		kprintf("# screen: framebuffer %ux%u pitch %u at %#lx is unusable; no screen\n",
		        fb->width, fb->height, fb->pitch, fb->addr);
		return NULL;
	}
	if (rs == 0 && gs == 0 && bs == 0) { /* no colour layout given: the usual one */
		rp = fb->bpp == 16 ? 11 : 16, rs = fb->bpp == 16 ? 5 : 8;
		gp = fb->bpp == 16 ? 5 : 8, gs = fb->bpp == 16 ? 6 : 8;
		bp = 0, bs = fb->bpp == 16 ? 5 : 8;
	}
	f->base = phys_to_virt(fb->addr);
	f->pitch = fb->pitch;
	f->width = fb->width;
	f->height = fb->height;
	f->bytes = fb->bpp / 8;
	for (int i = 0; i < 16; i++)
		f->palette[i] = channel(vga_rgb[i][0], rp, rs) | channel(vga_rgb[i][1], gp, gs) |
		                channel(vga_rgb[i][2], bp, bs);
	f->s.draw = draw_cell;
	f->s.banner_rows = banner_rows;
	f->s.draw_banner = draw_banner;
	snprintf(f->label, sizeof(f->label), "framebuffer %ux%ux%u", fb->width, fb->height,
	         fb->bpp);
	screen_start(&f->s, (int)(fb->width / 8), (int)(fb->height / FONT_HEIGHT), f->label);
	return &f->s.con;
}
