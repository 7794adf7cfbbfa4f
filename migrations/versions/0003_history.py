"""History tables, the order_status_changes view, orders_as_of, normalization versions, run owners.

Revision ID: 0003
Revises: 0002_webhooks
Create Date: 2026-11-29

Reviewed by hand from autogenerate. Adds `order_history`, `box_history`, `item_history`
(docs/design.md "History"), the view `order_status_changes` (SQL frozen here from
warehouse.views), the PostgreSQL function `orders_as_of(timestamptz)`,
`orders.normalize_version` (for `rc-sync rebuild`) and `sync_runs.host`/`pid` (to mark runs
killed mid-way as abandoned).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import warehouse.types

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORDER_STATUS_CHANGES = """
CREATE VIEW order_status_changes AS
WITH v AS (
    SELECT
        org_pk, order_pk, valid_from, shipping_status, billing_status,
        LAG(shipping_status) OVER w AS prev_shipping_status,
        LAG(billing_status) OVER w AS prev_billing_status,
        ROW_NUMBER() OVER w AS n
    FROM order_history
    WINDOW w AS (PARTITION BY org_pk, order_pk ORDER BY valid_from)
)
SELECT org_pk, order_pk, 'shipping_status' AS field,
       prev_shipping_status AS from_value, shipping_status AS to_value, valid_from AS changed_at
FROM v
WHERE n > 1 AND prev_shipping_status {distinct} shipping_status
UNION ALL
SELECT org_pk, order_pk, 'billing_status' AS field,
       prev_billing_status AS from_value, billing_status AS to_value, valid_from AS changed_at
FROM v
WHERE n > 1 AND prev_billing_status {distinct} billing_status
"""
DISTINCT = {"postgresql": "IS DISTINCT FROM", "sqlite": "IS NOT"}

ORDERS_AS_OF = """
CREATE FUNCTION {schema}.orders_as_of(as_of timestamptz)
RETURNS SETOF {schema}.order_history
LANGUAGE sql STABLE
AS $$
    SELECT * FROM {schema}.order_history
    WHERE valid_from <= as_of AND (valid_to IS NULL OR valid_to > as_of)
$$
"""


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


def _validity() -> list[sa.Column]:
    return [
        sa.Column("valid_from", warehouse.types.UTCDateTime(), nullable=False),
        sa.Column("valid_to", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("observed_at", warehouse.types.UTCDateTime(), nullable=False),
        sa.Column("observed_by", sa.Text(), nullable=False),
        sa.Column("deleted_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("content_hash", sa.Text(), nullable=False),
    ]


def upgrade() -> None:
    """Create the history tables, view and function; add the new columns."""
    op.add_column("orders", sa.Column("normalize_version", sa.BigInteger(), nullable=True))
    op.add_column("sync_runs", sa.Column("host", sa.Text(), nullable=True))
    op.add_column("sync_runs", sa.Column("pid", sa.BigInteger(), nullable=True))
    op.create_table(
        "order_history",
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("order_pk", sa.Text(), nullable=False),
        sa.Column("nested_updated_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("primary_id", sa.Text(), nullable=True),
        sa.Column("order_number", sa.Text(), nullable=True),
        sa.Column("ordered_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("printed_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("billing_status", sa.Text(), nullable=True),
        sa.Column("billing_subtotal", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("billing_total", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("billing_currency", sa.Text(), nullable=True),
        sa.Column("shipping_status", sa.Text(), nullable=True),
        sa.Column("ship_via", sa.Text(), nullable=True),
        sa.Column("ship_type", sa.Text(), nullable=True),
        sa.Column("warehouse", sa.Text(), nullable=True),
        sa.Column("ship_to_country", sa.Text(), nullable=True),
        sa.Column("ship_to_region", sa.Text(), nullable=True),
        sa.Column("raw", _json(), nullable=True),
        sa.Column("normalize_version", sa.BigInteger(), nullable=True),
        *_validity(),
        sa.PrimaryKeyConstraint("org_pk", "order_pk", "valid_from", name=op.f("pk_order_history")),
    )
    op.create_index(
        op.f("ix_order_history_org_pk_is_current_valid_from"),
        "order_history",
        ["org_pk", "is_current", "valid_from"],
        unique=False,
    )
    op.create_table(
        "box_history",
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("order_pk", sa.Text(), nullable=False),
        sa.Column("box_pk", sa.Text(), nullable=False),
        sa.Column("package_type", sa.Text(), nullable=True),
        sa.Column("tracking_number", sa.Text(), nullable=True),
        sa.Column("delivered_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("weight_g", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("ship_cost", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        *_validity(),
        sa.PrimaryKeyConstraint(
            "org_pk", "order_pk", "box_pk", "valid_from", name=op.f("pk_box_history")
        ),
    )
    op.create_table(
        "item_history",
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("order_pk", sa.Text(), nullable=False),
        sa.Column("box_pk", sa.Text(), nullable=False),
        sa.Column("item_pk", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("part_number", sa.Text(), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=True),
        sa.Column("unit_price", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        *_validity(),
        sa.PrimaryKeyConstraint(
            "org_pk", "order_pk", "box_pk", "item_pk", "valid_from", name=op.f("pk_item_history")
        ),
    )
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.execute(
        ORDER_STATUS_CHANGES.format(distinct=DISTINCT.get(dialect, DISTINCT["postgresql"])).strip()
    )
    if dialect == "postgresql":
        from warehouse.db import DEFAULT_SCHEMA, engine_schema, quote_identifier
        from warehouse.migrate import apply_comments

        schema = quote_identifier(engine_schema(bind) or DEFAULT_SCHEMA)
        op.execute(ORDERS_AS_OF.format(schema=schema).strip())
        apply_comments(bind)


def downgrade() -> None:
    """Drop everything this revision created."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS orders_as_of(timestamptz)")
    op.execute("DROP VIEW IF EXISTS order_status_changes")
    op.drop_table("item_history")
    op.drop_table("box_history")
    op.drop_index(op.f("ix_order_history_org_pk_is_current_valid_from"), table_name="order_history")
    op.drop_table("order_history")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("pid")
        batch.drop_column("host")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("normalize_version")
