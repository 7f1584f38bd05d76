"""The host tests as a package, for `python3 -m unittest tests.host.test_xxx` from the
repository root: their shared module (support.py, which puts scripts/ on sys.path) is imported
by its plain name, so this directory goes on sys.path too.  `unittest discover -s tests/host`
does that itself."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
