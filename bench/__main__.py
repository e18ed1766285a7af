"""`python -m bench` (or `make bench`): every benchmark, one after the other, each printing its
own details; then one table of the headline figures beside their same-run baselines."""

import sys

from bench import (
    fallback_bench,
    load_bench,
    netlab_bench,
    peer_bench,
    relay_bench,
    restart_bench,
    summary,
    wormhole_bench,
)

status = 0
for bench in (
    relay_bench,
    peer_bench,
    fallback_bench,
    wormhole_bench,
    load_bench,
    restart_bench,
    netlab_bench,
):
    status |= bench.main([])
    print(flush=True)
print("Summary: Sandpiper beside its baselines, measured in this run")
print(summary.table())
sys.exit(status)
