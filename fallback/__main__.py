"""`python -m fallback ...` is `sandpiper fallback ...` (the CLI owns option parsing and config)."""

import sys

from sandpiper.cli import main

sys.argv[1:1] = ["fallback"]
main()
