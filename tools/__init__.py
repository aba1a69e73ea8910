"""Operators' tools: the `minyi` CLI, demo data, benchmarks and drills (not services)."""
