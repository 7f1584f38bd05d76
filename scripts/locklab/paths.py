"""Where things are: the scripts/ directory (home of the commands) and the repository root."""

import os

SCRIPTS = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
REPO = os.path.dirname(SCRIPTS)
