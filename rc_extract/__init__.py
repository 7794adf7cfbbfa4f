"""rc_extract."""
