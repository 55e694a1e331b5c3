"""`python -m obd`: see obd/cli.py."""

import sys

from obd.cli import main

sys.exit(main())
