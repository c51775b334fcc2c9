import sys

from monitor.stack import cli

sys.exit(cli(sys.argv[1:]))
