#!/usr/bin/env python3
"""mkfont.py: turn an 8x16 PSF console font into kernel/console/font8x16.c (the code is
scripts/locklab/font.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from locklab import font  # noqa: E402

if __name__ == '__main__':
    sys.exit(font.main())
