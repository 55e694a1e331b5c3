"""`python -m obd`: see obd/cli.py."""

import sys

from .cli import main

sys.exit(main())
