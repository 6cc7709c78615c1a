"""Benchmarks of binder-actors (`make bench`); results go to bench/results/<date>.json."""
