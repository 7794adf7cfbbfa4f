"""Exact integer money (`_micros`), addresses.country_code, items.line_kind; views use them.

Revision ID: 0005_derived
Revises: 0004_api_budget
Create Date: 2026-11-29

Adds the derived columns of warehouse.derive (issue 11): an exact integer twin of every
money column (millionths of the currency unit), the ISO 3166-1 alpha-2 `country_code` of
addresses (and `ship_to_country_code` of order_history), and the `line_kind` of item lines.
The views `order_lines` and `daily_order_summary` are recreated (SQL frozen here from
warehouse.views) so that their money is exact on SQLite and their units count goods only.
Existing rows get the new values from `rc-sync rebuild` (NORMALIZE_VERSION 2; `rc-sync
status` says when it is due). Columns are only added, so SQLite's batch mode alters in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_derived"
down_revision: str | Sequence[str] | None = "0004_api_budget"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "orders": (
        ("billing_subtotal_micros", "int"),
        ("billing_shipping_micros", "int"),
        ("billing_tax_micros", "int"),
        ("billing_total_micros", "int"),
    ),
    "boxes": (
        ("ship_cost_micros", "int"),
        ("insured_value_micros", "int"),
        ("declared_value_micros", "int"),
        ("cod_value_micros", "int"),
    ),
    "items": (("unit_price_micros", "int"), ("line_kind", "text")),
    "addresses": (("country_code", "text"),),
    "order_history": (
        ("billing_subtotal_micros", "int"),
        ("billing_total_micros", "int"),
        ("ship_to_country_code", "text"),
    ),
    "box_history": (("ship_cost_micros", "int"),),
    "item_history": (("unit_price_micros", "int"), ("line_kind", "text")),
}

UTC_DAY = {
    "postgresql": "CAST((o.ordered_at AT TIME ZONE 'UTC') AS DATE)",
    "sqlite": "DATE(o.ordered_at)",
}
LINE_TOTAL = {
    "postgresql": "i.unit_price * i.quantity",
    "sqlite": "COALESCE(i.unit_price_micros * i.quantity / 1000000.0, i.unit_price * i.quantity)",
}
MONEY_SUM = {
    "postgresql": "SUM(o.{col})",
    "sqlite": "SUM(o.{col}_micros) / 1000000.0",
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
    i.unit_price, i.currency, {line_total} AS line_total,
    i.unit_weight_g, i.unit_weight_g * i.quantity AS line_weight_g,
    i.pick_location, i.origin_country_code,
    st.first_name AS ship_to_first_name, st.last_name AS ship_to_last_name,
    st.company AS ship_to_company, st.city AS ship_to_city, st.region AS ship_to_region,
    st.post_code AS ship_to_post_code, st.country AS ship_to_country,
    i.line_kind,
    CASE WHEN i.line_kind = 'goods' THEN i.quantity ELSE 0 END AS units,
    i.unit_price_micros, i.unit_price_micros * i.quantity AS line_total_micros,
    st.country_code AS ship_to_country_code
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
    {billing_subtotal} AS billing_subtotal,
    {billing_shipping} AS billing_shipping,
    {billing_tax} AS billing_tax,
    {billing_total} AS billing_total,
    SUM(o.billing_subtotal_micros) AS billing_subtotal_micros,
    SUM(o.billing_shipping_micros) AS billing_shipping_micros,
    SUM(o.billing_tax_micros) AS billing_tax_micros,
    SUM(o.billing_total_micros) AS billing_total_micros
FROM orders o
LEFT JOIN (
    SELECT org_pk, order_pk, COUNT(*) AS items, SUM(quantity) AS units
    FROM items
    WHERE line_kind = 'goods'
    GROUP BY org_pk, order_pk
) it ON it.org_pk = o.org_pk AND it.order_pk = o.order_pk
WHERE o.deleted_at IS NULL AND o.ordered_at IS NOT NULL
GROUP BY o.org_pk, {day}, o.billing_currency
"""

# The views as revision 0001 created them (for downgrade).
OLD_ORDER_LINES = """
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

OLD_DAILY_ORDER_SUMMARY = """
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


def view_statements(dialect: str) -> list[str]:
    """The CREATE VIEW statements of this revision for `dialect`."""
    key = "sqlite" if dialect == "sqlite" else "postgresql"
    sums = {
        c: MONEY_SUM[key].format(col=c)
        for c in ("billing_subtotal", "billing_shipping", "billing_tax", "billing_total")
    }
    return [
        ORDER_LINES.format(line_total=LINE_TOTAL[key]).strip(),
        DAILY_ORDER_SUMMARY.format(day=UTC_DAY[key], **sums).strip(),
    ]


def _drop_views() -> None:
    op.execute("DROP VIEW IF EXISTS daily_order_summary")
    op.execute("DROP VIEW IF EXISTS order_lines")


def upgrade() -> None:
    """Add the derived columns and recreate the two current-state views."""
    _drop_views()
    for table, columns in NEW_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, kind in columns:
                batch.add_column(
                    sa.Column(name, sa.BigInteger() if kind == "int" else sa.Text(), nullable=True)
                )
    for statement in view_statements(op.get_bind().dialect.name):
        op.execute(statement)
    if op.get_bind().dialect.name == "postgresql":
        from warehouse.migrate import apply_comments

        apply_comments(op.get_bind())


def downgrade() -> None:
    """Drop the derived columns; the views go back to revision 0001's."""
    _drop_views()
    for table, columns in NEW_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, _ in reversed(columns):
                batch.drop_column(name)
    day = UTC_DAY["sqlite" if op.get_bind().dialect.name == "sqlite" else "postgresql"]
    op.execute(OLD_ORDER_LINES.strip())
    op.execute(OLD_DAILY_ORDER_SUMMARY.format(day=day).strip())
