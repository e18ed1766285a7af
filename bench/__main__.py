"""`python -m bench` (or `make bench`): every benchmark, one after the other."""

import sys

from bench import fallback_bench, netlab_bench, peer_bench, relay_bench, restart_bench

status = relay_bench.main([])
print()
status |= peer_bench.main([])
print()
status |= fallback_bench.main([])
print()
status |= restart_bench.main([])
print()
status |= netlab_bench.main([])
sys.exit(status)
