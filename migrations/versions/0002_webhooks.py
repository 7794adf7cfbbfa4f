"""Webhooks: accepted deliveries, registered webhooks (token hashes only), poll verdicts.

Revision ID: 0002_webhooks
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import warehouse.types

revision: str = "0002_webhooks"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create webhook_events, webhook_registrations and webhook_poll_checks."""
    ts = warehouse.types.UTCDateTime
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("object_url", sa.Text(), nullable=True),
        sa.Column("order_pk", sa.Text(), nullable=True),
        sa.Column("body", warehouse.types.json_type(), nullable=True),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("received_at", ts(), nullable=False),
        sa.Column("nested_updated_at", ts(), nullable=True),
        sa.Column("applied_at", ts(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("requests", sa.BigInteger(), nullable=True),
        sa.Column("poll_verdict", sa.Text(), nullable=True),
        sa.Column("polled_at", ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    op.create_index(
        "ix_webhook_events_org_pk_order_pk", "webhook_events", ["org_pk", "order_pk"], unique=False
    )
    op.create_index(
        op.f("ix_webhook_events_received_at"), "webhook_events", ["received_at"], unique=False
    )
    op.create_index(
        op.f("ix_webhook_events_applied_at"), "webhook_events", ["applied_at"], unique=False
    )
    op.create_table(
        "webhook_registrations",
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("remote_url", sa.Text(), nullable=False),
        sa.Column("token_sha256", sa.Text(), nullable=False),
        sa.Column("registered_at", ts(), nullable=False),
        sa.Column("suspended_at", ts(), nullable=True),
        sa.Column("checked_at", ts(), nullable=True),
        sa.PrimaryKeyConstraint("org_pk", "webhook_url", name=op.f("pk_webhook_registrations")),
    )
    op.create_table(
        "webhook_poll_checks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("polled_at", ts(), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("misses", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_poll_checks")),
    )
    op.create_index(
        op.f("ix_webhook_poll_checks_org_pk"), "webhook_poll_checks", ["org_pk"], unique=False
    )
    op.create_index(
        op.f("ix_webhook_poll_checks_polled_at"), "webhook_poll_checks", ["polled_at"], unique=False
    )


def downgrade() -> None:
    """Drop the webhook tables."""
    op.drop_table("webhook_poll_checks")
    op.drop_table("webhook_registrations")
    op.drop_table("webhook_events")
