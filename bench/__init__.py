"""Throughput benchmark: `python -m bench [--quick] [--model DIR_OR_HUB_ID]` (see run.py)."""
