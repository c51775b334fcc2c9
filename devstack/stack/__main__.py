import sys

from devstack.stack import cli

sys.exit(cli(sys.argv[1:]))
