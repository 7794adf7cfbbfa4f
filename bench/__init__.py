"""rc-sync performance benchmark: `python -m bench --help` (see bench/README.md)."""
