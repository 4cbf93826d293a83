"""Warehouse I/O, run snapshots, item sequences and the vocabulary, and the synthetic shop."""
