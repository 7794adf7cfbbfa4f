"""rc-sync: keeps a SQL warehouse in step with ReadyCloud (engine, settings and command line)."""

__version__ = "0.1.0"
