"""The shared API request budget: api_budget (one row per App and host) and api_requests.

Revision ID: 0004_api_budget
Revises: 0003
Create Date: 2026-11-29

The ledger every rc-sync process of one App draws its requests from (warehouse/budget.py):
a grant is a row of api_requests, counted over a sliding window under a row lock on the
App's api_budget row (PostgreSQL) or inside a write transaction (SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import warehouse.types

revision: str = "0004_api_budget"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create api_budget and api_requests."""
    op.create_table(
        "api_budget",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("rate", sa.Text(), nullable=True),
        sa.Column("paused_until", sa.Float(precision=53), nullable=True),
        sa.Column("throttle_level", sa.BigInteger(), nullable=False),
        sa.Column("throttled_total", sa.BigInteger(), nullable=False),
        sa.Column("refresh_seen_at", sa.Float(precision=53), nullable=True),
        sa.Column("updated_at", warehouse.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_api_budget")),
    )
    op.create_table(
        "api_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.Float(precision=53), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_requests")),
    )
    op.create_index("ix_api_requests_key_sent_at", "api_requests", ["key", "sent_at"])
    if op.get_bind().dialect.name == "postgresql":
        from warehouse.migrate import apply_comments

        apply_comments(op.get_bind())


def downgrade() -> None:
    """Drop the budget tables."""
    op.drop_index("ix_api_requests_key_sent_at", table_name="api_requests")
    op.drop_table("api_requests")
    op.drop_table("api_budget")
