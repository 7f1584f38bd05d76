/*
 * The screen: the report as text for the person in front of the machine.
 * Serial stays the source of truth; this is a view of it.
 *
 * One text grid serves both screens a machine may have: a framebuffer
 * (fbcon.c draws each cell with the built-in font) and VGA text mode
 * (vgatext.c writes the cell).  Row 0 is a status bar naming the test
 * running (from the "# running:" lines); the rows below scroll.  At the end
 * marker ("# locklab: end verdict=...") a banner with the verdict in large
 * coloured letters takes the top of the screen and the last lines of the
 * report stay below it, the verdict line last.
 *
 * The grid keeps a copy of every cell, so scrolling redraws from memory and
 * never reads the framebuffer (slow, uncached, on real hardware).  It scrolls
 * half a screen at a time: one redraw per many lines, not one per line.
 */
#include "screen.h"
#include "kernel.h"

#define RUNNING_PREFIX "  # running: "
#define VERDICT_PREFIX "# locklab: end verdict="

static void cell(struct screen *s, int x, int y, char ch, uint8_t colour)
{
	s->text[y][x] = ch;
	s->colour[y][x] = colour;
	s->draw(s, x, y, ch, colour);
}

static void redraw_rows(struct screen *s, int from, int to)
{
	for (int y = from; y < to; y++)
		for (int x = 0; x < s->cols; x++)
			s->draw(s, x, y, s->text[y][x], s->colour[y][x]);
}

static void clear_rows(struct screen *s, int from, int to)
{
	for (int y = from; y < to; y++)
		for (int x = 0; x < s->cols; x++) {
			s->text[y][x] = ' ';
			s->colour[y][x] = SCREEN_TEXT;
		}
}

/* The status bar: one line, dark on light, padded to the full width. */
static void status(struct screen *s, const char *fmt, const char *arg, size_t len, uint8_t colour)
{
	char line[SCREEN_MAX_COLS + 1];

	snprintf(line, sizeof(line), fmt, (int)len, arg);
	size_t n = strlen(line);
	for (int x = 0; x < s->cols; x++)
		cell(s, x, 0, x < (int)n ? line[x] : ' ', colour);
}

/* Move rows [top+by, rows) up to top and blank the rest, then redraw. */
static void scroll(struct screen *s, int by)
{
	int keep = s->rows - s->top - by;

	for (int i = 0; i < keep; i++) {
		memcpy(s->text[s->top + i], s->text[s->top + by + i], (size_t)s->cols);
		memcpy(s->colour[s->top + i], s->colour[s->top + by + i], (size_t)s->cols);
	}
	clear_rows(s, s->top + keep, s->rows);
	redraw_rows(s, s->top, s->rows);
	s->y -= by;
}

static void newline(struct screen *s)
{
	s->x = 0;
	if (++s->y == s->rows) {
		int by = (s->rows - s->top) / 2;
		scroll(s, by > 0 ? by : 1);
	}
}

/*
 * The verdict: the banner over the top rows, and the report's last lines
 * (those that fit) moved below it, so the verdict line stays in view.
 */
static void verdict(struct screen *s, const char *word, size_t len)
{
	char big[8];
	uint8_t colour = len == 4 && memcmp(word, "pass", 4) == 0 ? SCREEN_PASS : SCREEN_FAIL;
	int used = s->y; /* rows top..y-1 hold text; y is the empty cursor row */
	size_t n = len < sizeof(big) - 1 ? len : sizeof(big) - 1;

	for (size_t i = 0; i < n; i++)
		big[i] = word[i] >= 'a' && word[i] <= 'z' ? (char)(word[i] - 32) : word[i];
	big[n] = '\0';
	status(s, " locklab: verdict %.*s", word, len, colour);
	int banner = s->banner_rows(s, (int)n);
	int top = 1 + banner;
	if (top >= s->rows - 1)
		top = s->rows - 2;   /* a tiny screen: the verdict line still shows */
	int fit = s->rows - 1 - top; /* leave the last row for the cursor */
	int first = used - fit > s->top ? used - fit : s->top;
	int moved = used - first;
	/* Rows move down when the report was shorter than the screen: copy from the end. */
	for (int k = 0; k < moved; k++) {
		int i = top > first ? moved - 1 - k : k;
		memmove(s->text[top + i], s->text[first + i], (size_t)s->cols);
		memmove(s->colour[top + i], s->colour[first + i], (size_t)s->cols);
	}
	clear_rows(s, top + moved, s->rows);
	clear_rows(s, 1, top);
	s->top = top;
	s->y = top + moved;
	s->x = 0;
	redraw_rows(s, 1, s->rows);
	s->draw_banner(s, big, colour);
}

static void end_of_line(struct screen *s)
{
	const char *line = s->line;
	size_t n = s->line_len;
	size_t rp = sizeof(RUNNING_PREFIX) - 1, vp = sizeof(VERDICT_PREFIX) - 1;

	if (n > rp && memcmp(line, RUNNING_PREFIX, rp) == 0) {
		size_t len = 0;
		while (rp + len < n && line[rp + len] != ' ')
			len++;
		status(s, " locklab | running: %.*s", line + rp, len, SCREEN_STATUS);
	} else if (n > vp && memcmp(line, VERDICT_PREFIX, vp) == 0) {
		verdict(s, line + vp, n - vp);
	}
	s->line_len = 0;
}

void screen_write(struct console *c, const char *str, size_t n)
{
	struct screen *s = (struct screen *)c;

	for (size_t i = 0; i < n; i++) {
		char ch = str[i];
		if (ch == '\n') {
			newline(s);
			end_of_line(s);
			continue;
		}
		if (s->line_len < sizeof(s->line))
			s->line[s->line_len++] = ch;
		if (ch == '\r')
			continue;
		if (ch == '\t')
			ch = ' ';
		if ((unsigned char)ch < FONT_FIRST || (unsigned char)ch >= FONT_FIRST + FONT_GLYPHS)
			ch = '?';
		if (s->x == s->cols)
			newline(s);
		cell(s, s->x++, s->y, ch, SCREEN_TEXT);
	}
}

/* Size the grid (capped to the copy kept) and draw the empty screen. */
void screen_start(struct screen *s, int cols, int rows, const char *name)
{
	s->cols = cols < SCREEN_MAX_COLS ? cols : SCREEN_MAX_COLS;
	s->rows = rows < SCREEN_MAX_ROWS ? rows : SCREEN_MAX_ROWS;
	s->top = 1;
	s->x = 0;
	s->y = 1;
	s->con.name = name;
	s->con.write = screen_write;
	s->con.serial = false;
	clear_rows(s, 0, s->rows);
	redraw_rows(s, 1, s->rows);
	status(s, " locklab | %.*s", "starting", 8, SCREEN_STATUS);
}
