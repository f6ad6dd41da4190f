"""Benchmarks (``make bench``): hub figures beside baselines measured in the same run."""
