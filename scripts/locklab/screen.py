"""screen: read the kernel's text back from a screenshot of its framebuffer.

The kernel draws 8x16 cells with its built-in font (kernel/console/font8x16.c)
from the top-left corner.  decode() turns each cell of a screenshot back into
a character by comparing its pixels with the same font's bitmaps: a cell
matches a glyph only if every one of its 128 pixels agrees, so text found on
the screen was drawn in exactly the kernel's font.  Used by scripts/test-console
(QEMU's screendump) and its unit tests.
"""
import os

from . import font as mkfont
from .paths import REPO

FONT_C = os.path.join(REPO, 'kernel', 'console', 'font8x16.c')
CELL_W, CELL_H = 8, 16


class Image:
    """RGB pixels, row-major, 3 bytes each."""

    def __init__(self, width, height, data):
        if len(data) < width * height * 3:
            raise ValueError('image data is %d bytes, %dx%d needs %d'
                             % (len(data), width, height, width * height * 3))
        self.width, self.height, self.data = width, height, data

    def pixel(self, x, y):
        i = (y * self.width + x) * 3
        return self.data[i:i + 3]

    def count(self, rgb):
        """How many pixels have exactly this colour."""
        want = bytes(rgb)
        d = self.data
        return sum(1 for i in range(0, self.width * self.height * 3, 3) if d[i:i + 3] == want)


def read_ppm(path):
    """A binary PPM (P6, maxval 255), as QEMU's screendump writes it."""
    with open(path, 'rb') as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b'#':
            pos = data.index(b'\n', pos) + 1
            continue
        end = pos
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b'P6' or fields[3] != b'255':
        raise ValueError('%s: not a P6 PPM with maxval 255' % path)
    return Image(int(fields[1]), int(fields[2]), data[pos + 1:])


def font_glyphs(path=FONT_C):
    return mkfont.glyphs(path)


def render(text, glyphs, fg=(170, 170, 170), bg=(0, 0, 0)):
    """The text drawn as the kernel draws it, as an Image (for tests)."""
    width = CELL_W * len(text)
    data = bytearray()
    for row in range(CELL_H):
        for ch in text:
            bits = glyphs[ch][row]
            for b in range(CELL_W):
                data += bytes(fg if bits & (0x80 >> b) else bg)
    return Image(width, CELL_H, bytes(data))


def paste(dest, src, x0, y0):
    """A copy of dest with src drawn at (x0, y0)."""
    data = bytearray(dest.data)
    for y in range(src.height):
        start = ((y0 + y) * dest.width + x0) * 3
        data[start:start + src.width * 3] = src.data[y * src.width * 3:(y + 1) * src.width * 3]
    return Image(dest.width, dest.height, bytes(data))


def decode(image, glyphs):
    """The screen as lines of text: each cell's glyph, or '\\0' where none matches."""
    by_bits = {}
    for ch, rows in glyphs.items():
        by_bits.setdefault(bytes(rows), ch)
        by_bits.setdefault(bytes(255 - r for r in rows), ch)   # inverted colours
    lines = []
    stride = image.width * 3
    for cy in range(image.height // CELL_H):
        line = []
        for cx in range(image.width // CELL_W):
            rows = bytearray()
            first = None
            for r in range(CELL_H):
                off = (cy * CELL_H + r) * stride + cx * CELL_W * 3
                px = image.data[off:off + CELL_W * 3]
                if first is None:
                    first = px[0:3]        # top-left: row 0 of every glyph is background
                bits = 0
                for b in range(CELL_W):
                    if px[b * 3:b * 3 + 3] != first:
                        bits |= 0x80 >> b
                rows.append(bits)
            line.append(by_bits.get(bytes(rows), '\0'))
        lines.append(''.join(line))
    return lines


def find_text(image, text, glyphs):
    """(row, column) of the first cell where text starts, or None."""
    for row, line in enumerate(decode(image, glyphs)):
        col = line.find(text)
        if col >= 0:
            return row, col
    return None
