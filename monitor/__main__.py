"""`python -m monitor`: the same as the `mood-monitor` command."""

import sys

from monitor.cli import main

sys.exit(main())
