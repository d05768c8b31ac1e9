"""``python -m taskspace`` runs the command line (``demo`` when no command is given)."""

import sys

from taskspace.cli import main

sys.exit(main())
