"""Benchmarks, one module per service (run by `minyi bench`)."""
