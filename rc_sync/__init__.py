"""rc_sync."""
