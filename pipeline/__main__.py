"""``python -m pipeline`` runs the ``globaldarts`` command."""

import sys

from pipeline.cli import main

sys.exit(main())
