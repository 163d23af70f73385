"""Benchmarks: scripts that print figures (targets live here, not in timed tests)."""
