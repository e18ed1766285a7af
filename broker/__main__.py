"""`python -m broker ...` is `sandpiper relay ...` (the CLI owns option parsing and config)."""

import sys

from sandpiper.cli import main

sys.argv[1:1] = ["relay"]
main()
