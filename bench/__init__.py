"""Benchmarks: Sandpiper figures beside bare pyzmq baselines measured in the same run."""
