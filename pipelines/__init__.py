"""Dagster definitions for rc-sync: thin assets over rc_sync.engine (see pipelines.definitions)."""
