"""Analyst views over the warehouse tables (the same SQL on SQLite and PostgreSQL)."""

from __future__ import annotations

from rc_common.tables import VIEW_NAMES as DAGSTER_VIEW_NAMES

# The only dialect difference: the UTC calendar day of a timestamp column.
UTC_DAY = {
    "postgresql": "CAST(({col} AT TIME ZONE 'UTC') AS DATE)",
    "sqlite": "DATE({col})",
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

# Money in the views. PostgreSQL's NUMERIC is exact as it is. SQLite has no decimal type
# (amounts are REAL), so its views compute with the exact integer `_micros` twins and divide
# once at the end: the one rounding gives the double nearest the exact decimal, which reads
# back (shortest repr) as that decimal. Fallback to the REAL amount only where an amount
# has no micros twin (more than six decimals; a load issue says so).
MICROS = 1_000_000
LINE_TOTAL = {
    "postgresql": "i.unit_price * i.quantity",
    "sqlite": (
        f"COALESCE(i.unit_price_micros * i.quantity / {MICROS}.0, i.unit_price * i.quantity)"
    ),
}


def _sum_money(dialect: str, column: str) -> str:
    """The exact sum of a money column of `orders o` in the dialect."""
    if dialect == "sqlite":
        return f"SUM(o.{column}_micros) / {MICROS}.0"
    return f"SUM(o.{column})"


# One row per observed change of an order's shipping or billing status, from order_history.
# The first version rc-sync saw of an order is not a change (its status was not seen changing).
# {distinct}: the null-safe inequality of the dialect.
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
# Every view the migrations create: the current-state views (Dagster assets) and the history one.
VIEW_NAMES = (*DAGSTER_VIEW_NAMES, "order_status_changes")

# PostgreSQL: the versions of every order as they were at one instant (a set-returning
# function). SQLite has none; docs/warehouse.md shows the equivalent parameterised query.
ORDERS_AS_OF = """
CREATE FUNCTION {schema}.orders_as_of(as_of timestamptz)
RETURNS SETOF {schema}.order_history
LANGUAGE sql STABLE
AS $$
    SELECT * FROM {schema}.order_history
    WHERE valid_from <= as_of AND (valid_to IS NULL OR valid_to > as_of)
$$
"""
ORDERS_AS_OF_QUERY = (
    "SELECT * FROM order_history\n"
    "WHERE valid_from <= :as_of AND (valid_to IS NULL OR valid_to > :as_of)"
)


def create_view_statements(dialect: str) -> list[str]:
    """CREATE VIEW statements for `dialect` ('sqlite' or 'postgresql'), in dependency order."""
    day = UTC_DAY.get(dialect, UTC_DAY["postgresql"]).format(col="o.ordered_at")
    distinct = DISTINCT.get(dialect, DISTINCT["postgresql"])
    money_dialect = "sqlite" if dialect == "sqlite" else "postgresql"
    sums = {
        column: _sum_money(money_dialect, column)
        for column in ("billing_subtotal", "billing_shipping", "billing_tax", "billing_total")
    }
    return [
        ORDER_LINES.format(line_total=LINE_TOTAL[money_dialect]).strip(),
        DAILY_ORDER_SUMMARY.format(day=day, **sums).strip(),
        ORDER_STATUS_CHANGES.format(distinct=distinct).strip(),
    ]


def drop_view_statements() -> list[str]:
    """DROP VIEW statements, reverse dependency order."""
    return [f"DROP VIEW IF EXISTS {name}" for name in reversed(VIEW_NAMES)]
