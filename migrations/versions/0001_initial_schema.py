"""Initial warehouse schema: data tables, bookkeeping tables, views and column comments.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Reviewed by hand from autogenerate: tables in dependency order, the views from
warehouse.views (frozen here as SQL), and on PostgreSQL COMMENT ON every table, view and
column from the data dictionary.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import warehouse.types

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DAY = {
    "postgresql": "CAST((o.ordered_at AT TIME ZONE 'UTC') AS DATE)",
    "sqlite": "DATE(o.ordered_at)",
}

ORDER_LINES = """
CREATE VIEW order_lines AS
SELECT
    i.org_pk, i.order_pk, i.box_pk, i.item_pk,
    o.primary_id, o.order_number, o.ordered_at, o.nested_updated_at,
    o.billing_status, o.billing_currency, o.shipping_status,
    o.ship_via, o.ship_type, o.warehouse,
    b.tracking_number, b.package_type, b.delivered_at,
    i.kind, i.part_number, i.code, i.description, i.quantity,
    i.unit_price, i.currency, i.unit_price * i.quantity AS line_total,
    i.unit_weight_g, i.unit_weight_g * i.quantity AS line_weight_g,
    i.pick_location, i.origin_country_code,
    st.first_name AS ship_to_first_name, st.last_name AS ship_to_last_name,
    st.company AS ship_to_company, st.city AS ship_to_city, st.region AS ship_to_region,
    st.post_code AS ship_to_post_code, st.country AS ship_to_country
FROM items i
JOIN boxes b
  ON b.org_pk = i.org_pk AND b.order_pk = i.order_pk AND b.box_pk = i.box_pk
JOIN orders o
  ON o.org_pk = i.org_pk AND o.order_pk = i.order_pk
LEFT JOIN addresses st
  ON st.org_pk = i.org_pk AND st.order_pk = i.order_pk AND st.role = 'ship_to'
WHERE o.deleted_at IS NULL
"""

DAILY_ORDER_SUMMARY = """
CREATE VIEW daily_order_summary AS
SELECT
    o.org_pk,
    {day} AS day,
    o.billing_currency,
    COUNT(*) AS orders,
    COALESCE(SUM(it.items), 0) AS items,
    COALESCE(SUM(it.units), 0) AS units,
    SUM(o.billing_subtotal) AS billing_subtotal,
    SUM(o.billing_shipping) AS billing_shipping,
    SUM(o.billing_tax) AS billing_tax,
    SUM(o.billing_total) AS billing_total
FROM orders o
LEFT JOIN (
    SELECT org_pk, order_pk, COUNT(*) AS items, SUM(quantity) AS units
    FROM items
    GROUP BY org_pk, order_pk
) it ON it.org_pk = o.org_pk AND it.order_pk = o.order_pk
WHERE o.deleted_at IS NULL AND o.ordered_at IS NOT NULL
GROUP BY o.org_pk, {day}, o.billing_currency
"""


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


def upgrade() -> None:
    """Create the tables, indexes and views; comment them on PostgreSQL."""
    op.create_table(
        "backfill_progress",
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("finished_at", warehouse.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("org_pk", "key", "day", name=op.f("pk_backfill_progress")),
    )
    op.create_table(
        "load_issues",
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("order_pk", sa.Text(), nullable=False),
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("row_key", sa.Text(), nullable=False),
        sa.Column("column_name", sa.Text(), nullable=False),
        sa.Column("raw_value", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("seen_at", warehouse.types.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", warehouse.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "org_pk",
            "order_pk",
            "table_name",
            "row_key",
            "column_name",
            name=op.f("pk_load_issues"),
        ),
    )
    op.create_table(
        "orders",
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("order_pk", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("primary_id", sa.Text(), nullable=True),
        sa.Column("unique_id", sa.Text(), nullable=True),
        sa.Column("order_number", sa.Text(), nullable=True),
        sa.Column("customer_number", sa.Text(), nullable=True),
        sa.Column("po_number", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("terms", sa.Text(), nullable=True),
        sa.Column("ordered_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("printed_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("updated_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("nested_updated_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("billing_status", sa.Text(), nullable=True),
        sa.Column("billing_subtotal", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("billing_shipping", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("billing_tax", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("billing_total", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("billing_currency", sa.Text(), nullable=True),
        sa.Column("shipping_status", sa.Text(), nullable=True),
        sa.Column("ship_via", sa.Text(), nullable=True),
        sa.Column("ship_type", sa.Text(), nullable=True),
        sa.Column("warehouse", sa.Text(), nullable=True),
        sa.Column("source_name", sa.Text(), nullable=True),
        sa.Column("tags", _json(), nullable=True),
        sa.Column("custom_fields", _json(), nullable=True),
        sa.Column("raw", _json(), nullable=True),
        sa.Column("content_hash", sa.Text(), nullable=True),
        sa.Column("deleted_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("synced_at", warehouse.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("org_pk", "order_pk", name=op.f("pk_orders")),
    )
    op.create_index(op.f("ix_orders_deleted_at"), "orders", ["deleted_at"], unique=False)
    op.create_index(
        op.f("ix_orders_nested_updated_at"), "orders", ["nested_updated_at"], unique=False
    )
    op.create_index(op.f("ix_orders_ordered_at"), "orders", ["ordered_at"], unique=False)
    op.create_index(op.f("ix_orders_primary_id"), "orders", ["primary_id"], unique=False)
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("started_at", warehouse.types.UTCDateTime(), nullable=False),
        sa.Column("finished_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("orgs", _json(), nullable=True),
        sa.Column("counts", _json(), nullable=True),
        sa.Column("requests", sa.BigInteger(), nullable=True),
        sa.Column("retries", sa.BigInteger(), nullable=True),
        sa.Column("throttled", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_index(op.f("ix_sync_runs_started_at"), "sync_runs", ["started_at"], unique=False)
    op.create_table(
        "sync_state",
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("watermark", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("watermark_updated_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("last_run_id", sa.BigInteger(), nullable=True),
        sa.Column("last_run_kind", sa.Text(), nullable=True),
        sa.Column("last_run_started_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("last_run_finished_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("last_run_status", sa.Text(), nullable=True),
        sa.Column("capabilities", _json(), nullable=True),
        sa.Column("updated_at", warehouse.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("org_pk", name=op.f("pk_sync_state")),
    )
    op.create_table(
        "addresses",
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("order_pk", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("company", sa.Text(), nullable=True),
        sa.Column("address_1", sa.Text(), nullable=True),
        sa.Column("address_2", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("post_code", sa.Text(), nullable=True),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("residential", sa.Boolean(), nullable=True),
        sa.Column("validated", sa.Boolean(), nullable=True),
        sa.Column("synced_at", warehouse.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("role IN ('ship_to', 'ship_from')", name=op.f("ck_addresses_role")),
        sa.ForeignKeyConstraint(
            ["org_pk", "order_pk"],
            ["orders.org_pk", "orders.order_pk"],
            name=op.f("fk_addresses_org_pk_order_pk_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_pk", "order_pk", "role", name=op.f("pk_addresses")),
    )
    op.create_table(
        "boxes",
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("order_pk", sa.Text(), nullable=False),
        sa.Column("box_pk", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("package_type", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("length_m", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("width_m", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("height_m", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("weight_g", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("ship_cost", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("insured_value", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("declared_value", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("cod_value", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("tracking_number", sa.Text(), nullable=True),
        sa.Column("confirmation_type", sa.Text(), nullable=True),
        sa.Column("insurance_type", sa.Text(), nullable=True),
        sa.Column("cod", sa.Text(), nullable=True),
        sa.Column("shipper_release", sa.Boolean(), nullable=True),
        sa.Column("saturday_delivery", sa.Boolean(), nullable=True),
        sa.Column("delivered_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("updated_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("custom_fields", _json(), nullable=True),
        sa.Column("synced_at", warehouse.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_pk", "order_pk"],
            ["orders.org_pk", "orders.order_pk"],
            name=op.f("fk_boxes_org_pk_order_pk_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_pk", "order_pk", "box_pk", name=op.f("pk_boxes")),
    )
    op.create_index(op.f("ix_boxes_tracking_number"), "boxes", ["tracking_number"], unique=False)
    op.create_table(
        "items",
        sa.Column("org_pk", sa.Text(), nullable=False),
        sa.Column("order_pk", sa.Text(), nullable=False),
        sa.Column("box_pk", sa.Text(), nullable=False),
        sa.Column("item_pk", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=True),
        sa.Column("part_number", sa.Text(), nullable=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("unit_price", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("unit_weight_g", warehouse.types.DecimalNumber(), nullable=True),
        sa.Column("pick_location", sa.Text(), nullable=True),
        sa.Column("origin_country_code", sa.Text(), nullable=True),
        sa.Column("ean", sa.Text(), nullable=True),
        sa.Column("isbn", sa.Text(), nullable=True),
        sa.Column("ups", sa.Text(), nullable=True),
        sa.Column("custom_fields", _json(), nullable=True),
        sa.Column("created_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("updated_at", warehouse.types.UTCDateTime(), nullable=True),
        sa.Column("synced_at", warehouse.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_pk", "order_pk", "box_pk"],
            ["boxes.org_pk", "boxes.order_pk", "boxes.box_pk"],
            name=op.f("fk_items_org_pk_order_pk_box_pk_boxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_pk", "order_pk", "box_pk", "item_pk", name=op.f("pk_items")),
    )
    op.create_index(op.f("ix_items_part_number"), "items", ["part_number"], unique=False)
    dialect = op.get_bind().dialect.name
    op.execute(ORDER_LINES.strip())
    day = UTC_DAY.get(dialect, UTC_DAY["postgresql"])
    op.execute(DAILY_ORDER_SUMMARY.format(day=day).strip())
    if dialect == "postgresql":
        from warehouse.migrate import apply_comments

        apply_comments(op.get_bind())


def downgrade() -> None:
    """Drop everything this revision created."""
    op.execute("DROP VIEW IF EXISTS daily_order_summary")
    op.execute("DROP VIEW IF EXISTS order_lines")
    op.drop_table("items")
    op.drop_table("boxes")
    op.drop_table("addresses")
    op.drop_table("orders")
    op.drop_table("load_issues")
    op.drop_table("sync_state")
    op.drop_table("sync_runs")
    op.drop_table("backfill_progress")
