"""Host tests for the console tooling: reading the kernel's text back from a
screenshot (scripts/screen.py), the font generator and the SPCR table that
scripts/test-console builds."""
import os
import tempfile
import unittest

import support  # noqa: F401  (puts scripts/ on sys.path)
from locklab import console_test, screen
from locklab import font as mkfont


FONT_PSF = '/usr/share/consolefonts/Uni2-VGA16.psf.gz'
LINE = '# locklab: end verdict=pass'


def blank(width, height):
    return screen.Image(width, height, bytes(width * height * 3))


class ScreenRead(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.glyphs = screen.font_glyphs()

    def screenshot(self, text, col, row, glyphs=None, **colours):
        drawn = screen.render(text, glyphs or self.glyphs, **colours)
        return screen.paste(blank(64 * 8, 6 * 16), drawn, col * 8, row * 16)

    def test_finds_line_at_its_cell(self):
        image = self.screenshot(LINE, 3, 4)
        self.assertEqual(screen.find_text(image, LINE, self.glyphs), (4, 3))

    def test_status_bar_colours_read_too(self):
        image = self.screenshot('running: boot.cmdline', 0, 0, fg=(0, 0, 0),
                                bg=(170, 170, 170))
        self.assertEqual(screen.find_text(image, 'running: boot.cmdline', self.glyphs), (0, 0))

    def test_other_font_is_not_the_kernels(self):
        # One pixel of one glyph different: the line no longer matches.
        other = dict(self.glyphs)
        rows = bytearray(other['v'])
        rows[8] ^= 0x01
        other['v'] = bytes(rows)
        image = self.screenshot(LINE, 0, 1, glyphs=other)
        self.assertIsNone(screen.find_text(image, LINE, self.glyphs))
        self.assertEqual(screen.find_text(image, 'pass', self.glyphs), (1, 23))

    def test_off_grid_text_is_not_found(self):
        drawn = screen.render(LINE, self.glyphs)
        image = screen.paste(blank(64 * 8, 6 * 16), drawn, 4, 16)
        self.assertIsNone(screen.find_text(image, LINE, self.glyphs))

    def test_fail_is_not_pass(self):
        image = self.screenshot(LINE.replace('pass', 'fail'), 0, 0)
        self.assertIsNone(screen.find_text(image, LINE, self.glyphs))

    def test_ppm_round_trip(self):
        image = self.screenshot(LINE, 1, 2)
        with tempfile.NamedTemporaryFile(suffix='.ppm', delete=False) as f:
            f.write(b'P6\n# comment\n%d %d\n255\n' % (image.width, image.height) + image.data)
        try:
            back = screen.read_ppm(f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual((back.width, back.height, back.data),
                         (image.width, image.height, image.data))
        self.assertEqual(back.count((170, 170, 170)), image.count((170, 170, 170)))

    def test_bad_ppm_is_refused(self):
        with tempfile.NamedTemporaryFile(suffix='.ppm', delete=False) as f:
            f.write(b'P5\n2 2\n255\n\0\0\0\0')
        try:
            with self.assertRaises(ValueError):
                screen.read_ppm(f.name)
        finally:
            os.unlink(f.name)


class Font(unittest.TestCase):
    def test_every_printable_ascii_glyph(self):
        glyphs = screen.font_glyphs()
        self.assertEqual(sorted(glyphs), [chr(c) for c in range(0x20, 0x7f)])
        self.assertTrue(all(len(rows) == 16 for rows in glyphs.values()))
        self.assertEqual(len(set(glyphs.values())), len(glyphs))   # all distinct

    @unittest.skipUnless(os.path.exists(FONT_PSF), 'console-setup-linux font not installed')
    def test_committed_font_is_the_generated_one(self):
        with open(screen.FONT_C) as f:
            committed = f.read()
        self.assertEqual(mkfont.generate(FONT_PSF, os.path.basename(FONT_PSF)), committed)


class Spcr(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tc = console_test

    def test_table_layout_and_checksum(self):
        t = self.tc.spcr_table(port=0x2f8)
        self.assertEqual(len(t), 80)
        self.assertEqual(t[0:4], b'SPCR')
        self.assertEqual(int.from_bytes(t[4:8], 'little'), 80)
        self.assertEqual(sum(t) & 0xff, 0)
        self.assertEqual(t[36], 0)                      # full 16550
        self.assertEqual(t[40], 1)                      # system I/O
        self.assertEqual(int.from_bytes(t[44:52], 'little'), 0x2f8)
        self.assertEqual(t[58], 7)                      # 115200


if __name__ == '__main__':
    unittest.main()
