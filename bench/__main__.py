"""`python -m bench` (or `make bench`): every benchmark, one after the other."""

import sys

from bench import relay_bench

sys.exit(relay_bench.main(sys.argv[1:]))
