"""Benchmarks of keras-gated: `python -m benchmarks.rnn`."""
