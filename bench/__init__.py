"""Benchmarks, run as `python -m bench <name>`; each prints a JSON object as its last line."""
