#!/usr/bin/env python3
"""ktap.py: summary and verdict of a KTAP log (scripts/ktap.py LOG [--junit F] [--json F]) (the
code is scripts/locklab/ktap.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from locklab import ktap  # noqa: E402

if __name__ == '__main__':
    sys.exit(ktap.main())
