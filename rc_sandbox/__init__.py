"""rc_sandbox."""
