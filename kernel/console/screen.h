/* The text grid shared by the screen consoles (framebuffer and VGA text). */
#ifndef LOCKLAB_SCREEN_H
#define LOCKLAB_SCREEN_H

#include "console.h"

#define SCREEN_MAX_COLS 240
#define SCREEN_MAX_ROWS 100

/* Colours, as VGA palette indexes (fbcon maps them to RGB). */
#define SCREEN_TEXT 0x07   /* light grey on black */
#define SCREEN_STATUS 0x70 /* black on light grey */
#define SCREEN_PASS 0x2f   /* white on green */
#define SCREEN_FAIL 0x4f   /* white on red */

struct screen {
	struct console con;
	int cols, rows;
	int top;       /* first scrolling row: 1, or below the verdict banner */
	int x, y;      /* cursor */
	char line[96]; /* the current line, for the status bar and the verdict */
	size_t line_len;
	char text[SCREEN_MAX_ROWS][SCREEN_MAX_COLS];
	uint8_t colour[SCREEN_MAX_ROWS][SCREEN_MAX_COLS];
	/* The backend: one cell; the banner's height in rows; the banner. */
	void (*draw)(struct screen *s, int x, int y, char ch, uint8_t colour);
	int (*banner_rows)(struct screen *s, int letters);
	void (*draw_banner)(struct screen *s, const char *word, uint8_t colour);
};

void screen_start(struct screen *s, int cols, int rows, const char *name);
void screen_write(struct console *c, const char *str, size_t n);

#endif
