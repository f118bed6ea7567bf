"""Benchmarks (`make bench`, `fraudops bench …`): numbers as JSON plus one markdown table, with the machine."""
