"""The data dictionary: one description and unit for every column of every table and view.

Feeds the PostgreSQL COMMENTs (via the models and migrations) and docs/warehouse.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TEXT = "text"
KEY = "text key"
TS = "UTC timestamp"
JSON = "JSON"
BOOL = "boolean"
COUNT = "integer"
GRAMS = "grams"
METRES = "metres"
CURRENCY = "ISO 4217 code"
EPOCH = "seconds since 1970-01-01 UTC"


def money(currency_column: str) -> str:
    """Unit label of a decimal amount whose currency is in `currency_column`."""
    return f"decimal amount in `{currency_column}`"


def micros(currency_column: str) -> str:
    """Unit label of an exact integer amount in millionths of the `currency_column` unit."""
    return f"integer millionths of `{currency_column}`"


def _micros(column: str, currency_column: str) -> tuple[str, str, str]:
    """The dictionary row of a money column's exact integer twin."""
    return (
        f"{column}_micros",
        f"{column} x 1,000,000 as an exact integer (sum this on SQLite; NULL when the amount "
        "has more than 6 decimals)",
        micros(currency_column),
    )


ISO_COUNTRY = "ISO 3166-1 alpha-2"
LINE_KIND = (
    "line_kind",
    "goods, discount, tax, shipping, adjustment or other: kind normalized (synonyms mapped; "
    "a missing kind is goods, or adjustment when the unit price is negative)",
    TEXT,
)


@dataclass(frozen=True)
class ColumnDoc:
    """What a column means and its unit."""

    description: str
    unit: str

    def comment(self) -> str:
        """The database COMMENT text: description plus unit."""
        return f"{self.description} [{self.unit}]"


@dataclass(frozen=True)
class TableDoc:
    """What a table or view holds, and its columns in display order."""

    description: str
    columns: dict[str, ColumnDoc] = field(default_factory=dict)
    kind: str = "table"


def _cols(*rows: tuple[str, str, str]) -> dict[str, ColumnDoc]:
    return {name: ColumnDoc(description, unit) for name, description, unit in rows}


_ORG = ("org_pk", "ReadyCloud organization pk (from the object's url)", KEY)
_ORDER = ("order_pk", "ReadyCloud order pk (from the order's url)", KEY)
_BOX = ("box_pk", "ReadyCloud box pk (from the box's url)", KEY)
_ITEM = ("item_pk", "ReadyCloud item pk (from the item's url)", KEY)
_SYNCED = ("synced_at", "when rc-sync last wrote or confirmed this row", TS)

TABLES: dict[str, TableDoc] = {
    "orders": TableDoc(
        "One row per ReadyCloud order: its current state at the source.",
        _cols(
            _ORG,
            _ORDER,
            ("url", "API url of the order, as received", TEXT),
            ("primary_id", "order id in the originating fulfilment system", TEXT),
            ("unique_id", "globally unique id in ReadyCloud", TEXT),
            ("order_number", "numeric twin of primary_id, stored verbatim as text", TEXT),
            ("customer_number", "recipient's customer number", TEXT),
            ("po_number", "purchase order number", TEXT),
            ("message", "message to the recipient printed on the packing document", TEXT),
            ("terms", "payment terms (e.g. Prepaid, COD)", TEXT),
            ("ordered_at", "when the order was finalised", TS),
            ("printed_at", "when the label was printed", TS),
            ("created_at", "when the order was created in ReadyCloud", TS),
            ("updated_at", "last change of the order itself", TS),
            (
                "nested_updated_at",
                "last change of the order or anything in it (boxes, items, notes...)",
                TS,
            ),
            ("billing_status", "billing.status (e.g. pending, paid)", TEXT),
            ("billing_subtotal", "billing.subtotal", money("billing_currency")),
            ("billing_shipping", "billing.shipping", money("billing_currency")),
            ("billing_tax", "billing.tax", money("billing_currency")),
            ("billing_total", "billing.total", money("billing_currency")),
            ("billing_currency", "currency of the billing amounts", CURRENCY),
            ("shipping_status", "shipping.status", TEXT),
            ("ship_via", "carrier or shipping service (e.g. UPS)", TEXT),
            ("ship_type", "service level (e.g. Ground, Priority Mail)", TEXT),
            ("warehouse", "shipping.warehouse", TEXT),
            ("source_name", "source.name: the integration the order came from", TEXT),
            ("tags", "tags on the order (array of strings)", JSON),
            ("custom_fields", "free name/value map set on the order", JSON),
            ("raw", "the order document as received (NUL characters replaced)", JSON),
            ("content_hash", "SHA-256 of the canonical raw document (change detection)", TEXT),
            ("deleted_at", "when reconcile found the order gone at the source; else NULL", TS),
            _SYNCED,
            (
                "normalize_version",
                "normalization version that typed this row (older than the installed one: "
                "run `rc-sync rebuild`)",
                COUNT,
            ),
            _micros("billing_subtotal", "billing_currency"),
            _micros("billing_shipping", "billing_currency"),
            _micros("billing_tax", "billing_currency"),
            _micros("billing_total", "billing_currency"),
        ),
    ),
    "boxes": TableDoc(
        "One row per box (package) of an order; mirrors the order's current boxes.",
        _cols(
            _ORG,
            _ORDER,
            _BOX,
            ("url", "API url of the box", TEXT),
            ("package_type", "physical container (box size, envelope, tube)", TEXT),
            ("description", "human description of the container", TEXT),
            ("length_m", "length (normally the longest side)", METRES),
            ("width_m", "width", METRES),
            ("height_m", "height", METRES),
            ("weight_g", "weight of the box", GRAMS),
            ("ship_cost", "shipping and handling for this box", money("currency")),
            ("insured_value", "insured value", money("currency")),
            ("declared_value", "customs value", money("currency")),
            ("cod_value", "amount to collect on delivery", money("currency")),
            ("currency", "currency of the box amounts", CURRENCY),
            ("tracking_number", "carrier tracking number", TEXT),
            ("confirmation_type", "delivery confirmation (none, signature_required...)", TEXT),
            ("insurance_type", "insurance type", TEXT),
            ("cod", "collect-on-delivery specification, verbatim", TEXT),
            ("shipper_release", "shipper release (leave without signature)", BOOL),
            ("saturday_delivery", "Saturday delivery requested", BOOL),
            ("delivered_at", "delivery time", TS),
            ("created_at", "when the box was created", TS),
            ("updated_at", "last change of the box", TS),
            ("custom_fields", "free name/value map set on the box", JSON),
            _SYNCED,
            _micros("ship_cost", "currency"),
            _micros("insured_value", "currency"),
            _micros("declared_value", "currency"),
            _micros("cod_value", "currency"),
        ),
    ),
    "items": TableDoc(
        "One row per item line in a box; mirrors the box's current items.",
        _cols(
            _ORG,
            _ORDER,
            _BOX,
            _ITEM,
            ("url", "API url of the item", TEXT),
            ("kind", "goods, discount, tax or adjustment", TEXT),
            ("quantity", "count of this item in the box", COUNT),
            ("part_number", "SKU", TEXT),
            ("code", "item-type code", TEXT),
            ("description", "item description", TEXT),
            ("unit_price", "price of one unit (x quantity = line total)", money("currency")),
            ("currency", "currency of unit_price", CURRENCY),
            ("unit_weight_g", "weight of one unit", GRAMS),
            ("pick_location", "warehouse bin/location", TEXT),
            ("origin_country_code", "country of origin (customs)", TEXT),
            ("ean", "EAN product code", TEXT),
            ("isbn", "ISBN", TEXT),
            ("ups", "product identifier `ups` (probably a UPC)", TEXT),
            ("custom_fields", "free name/value map set on the item", JSON),
            ("created_at", "when the item was created", TS),
            ("updated_at", "last change of the item", TS),
            _SYNCED,
            _micros("unit_price", "currency"),
            LINE_KIND,
        ),
    ),
    "addresses": TableDoc(
        "The order's shipping.ship_to and shipping.ship_from addresses (one row per role).",
        _cols(
            _ORG,
            _ORDER,
            ("role", "ship_to or ship_from", TEXT),
            ("first_name", "first name", TEXT),
            ("last_name", "last name", TEXT),
            ("company", "company", TEXT),
            ("address_1", "street address, line 1", TEXT),
            ("address_2", "street address, line 2", TEXT),
            ("city", "city", TEXT),
            ("region", "state / province / region", TEXT),
            ("post_code", "postal code", TEXT),
            ("country", "country as written at the source (free text)", TEXT),
            ("email", "e-mail address", TEXT),
            ("phone", "phone number", TEXT),
            ("residential", "residential address", BOOL),
            ("validated", "address validated by ReadyCloud", BOOL),
            _SYNCED,
            (
                "country_code",
                "country derived from `country` (names in English and 40 other languages, "
                "ISO codes, common aliases); NULL plus a load issue when none is recognised",
                ISO_COUNTRY,
            ),
        ),
    ),
    "load_issues": TableDoc(
        "Field values that could not be parsed or stored as received (the column holds "
        "NULL or a cleaned value); mirrors the order's current problems.",
        _cols(
            _ORG,
            ("order_pk", "order pk ('?' when the order's url itself was unusable)", KEY),
            ("table_name", "table of the affected row", TEXT),
            (
                "row_key",
                "row inside the order: box_pk, box_pk/item_pk, address role; '' for the order",
                KEY,
            ),
            ("column_name", "affected column", TEXT),
            ("raw_value", "the value as received (truncated to 2000 characters)", TEXT),
            ("message", "what was wrong with it", TEXT),
            ("seen_at", "when the problem was first seen", TS),
            ("last_seen_at", "when the problem was last seen", TS),
        ),
    ),
    "sync_state": TableDoc(
        "Per-org bookkeeping, written in the same transaction as the rows it describes.",
        _cols(
            _ORG,
            (
                "watermark",
                "live sync position: every order with nested_updated_at before it is loaded",
                TS,
            ),
            ("watermark_updated_at", "when the watermark last moved", TS),
            ("last_run_id", "sync_runs.id of the last run that covered this org", COUNT),
            ("last_run_kind", "kind of that run", TEXT),
            ("last_run_started_at", "when that run started", TS),
            ("last_run_finished_at", "when that run finished", TS),
            ("last_run_status", "running, success or failed", TEXT),
            ("capabilities", "cached API capability probes for this org", JSON),
            ("updated_at", "when this row was last written", TS),
        ),
    ),
    "sync_runs": TableDoc(
        "One row per rc-sync run.",
        _cols(
            ("id", "run id", COUNT),
            ("kind", "incremental, full_refresh, window, backfill, reconcile...", TEXT),
            ("started_at", "when the run started", TS),
            ("finished_at", "when the run finished (NULL while running)", TS),
            (
                "status",
                "running, success, failed, or abandoned (the process died mid-run; set by the "
                "next run that took one of its orgs' locks)",
                TEXT,
            ),
            ("orgs", "org pks the run covered (array)", JSON),
            ("counts", "per-org and per-table counts reported by the run", JSON),
            ("requests", "HTTP requests made", COUNT),
            ("retries", "HTTP retries", COUNT),
            ("throttled", "HTTP 429 responses", COUNT),
            ("error", "error message when the run failed", TEXT),
            ("host", "host name of the process that ran it", TEXT),
            ("pid", "process id that ran it (to notice runs killed mid-way)", COUNT),
        ),
    ),
    "api_budget": TableDoc(
        "The shared API request budget: one row per App and host (key), row-locked per grant.",
        _cols(
            ("key", "sha256 of the API base URL and READYCLOUD_APP (never the token)", KEY),
            ("rate", "the rate last configured by a run (READYCLOUD_RATE_LIMIT)", TEXT),
            ("paused_until", "no request of the App before this moment (after a 429)", EPOCH),
            ("throttle_level", "consecutive 429s: the pause doubles with each", COUNT),
            ("throttled_total", "429 responses seen by every process of the App", COUNT),
            ("refresh_seen_at", "last time refresh work asked for budget", EPOCH),
            ("updated_at", "when the row last changed", TS),
        ),
    ),
    "api_requests": TableDoc(
        "Requests granted by the shared budget (the sliding window); kept for two days.",
        _cols(
            ("id", "row id", COUNT),
            ("key", "api_budget.key of the App", KEY),
            ("sent_at", "when the request was granted", EPOCH),
            ("purpose", "list, compact, detail, probe, check or retry", TEXT),
            ("priority", "refresh or bulk (backfill, reconcile, checks, first loads)", TEXT),
        ),
    ),
    "backfill_progress": TableDoc(
        "Days of keyed day-by-day backfills that are fully loaded (resume, not restart).",
        _cols(
            _ORG,
            ("key", "backfill key (run or backfill id)", TEXT),
            ("day", "UTC day of nested_updated_at that was loaded", "date"),
            ("finished_at", "when the day was committed", TS),
        ),
    ),
    "webhook_events": TableDoc(
        "One row per accepted webhook delivery, committed before the delivery was acknowledged.",
        _cols(
            ("id", "event id, in order of arrival", COUNT),
            _ORG,
            ("entity", "webhook entity (orders)", TEXT),
            ("method", "HTTP method of the delivery: PUT, POST or DELETE", TEXT),
            ("object_url", "url of the object the delivery is about", TEXT),
            ("order_pk", "order pk the delivery is about (NULL when not known)", KEY),
            ("body", "the delivered JSON document, as received", JSON),
            ("content_hash", "SHA-256 of the delivered body bytes", TEXT),
            ("received_at", "when the receiver committed the delivery", TS),
            ("nested_updated_at", "the delivered order's nested_updated_at", TS),
            ("applied_at", "when the applier applied it (NULL while pending)", TS),
            (
                "outcome",
                "what applying did: applied, unchanged, older, deleted, superseded, gone, invalid",
                TEXT,
            ),
            ("requests", "API requests spent completing it (detail GETs)", COUNT),
            (
                "poll_verdict",
                "hit when the next poll found the warehouse already current, miss when it repaired it",
                TEXT,
            ),
            ("polled_at", "when the poll that gave the verdict ran", TS),
        ),
    ),
    "webhook_registrations": TableDoc(
        "Webhooks rc-sync registered, with a SHA-256 of each token (never the token).",
        _cols(
            _ORG,
            ("webhook_url", "url of the webhook object at ReadyCloud", TEXT),
            ("entity", "webhook entity (orders)", TEXT),
            ("remote_url", "where ReadyCloud delivers", TEXT),
            ("token_sha256", "hex SHA-256 of the webhook token", TEXT),
            ("registered_at", "when rc-sync registered it", TS),
            ("suspended_at", "suspended_at as last seen at ReadyCloud", TS),
            ("checked_at", "when rc-sync last read it from ReadyCloud", TS),
        ),
    ),
    "webhook_poll_checks": TableDoc(
        "Per incremental poll and org: changes webhooks had already delivered (hits) or missed.",
        _cols(
            ("id", "check id", COUNT),
            _ORG,
            ("polled_at", "when the poll's batch was loaded", TS),
            ("hits", "changed orders the warehouse already had from a webhook", COUNT),
            ("misses", "changed orders the poll had to repair", COUNT),
        ),
    ),
}

_VALIDITY = (
    (
        "valid_from",
        "start of this version's validity: the order version's nested_updated_at (for a "
        "reappearance without a newer version: when rc-sync saw the order again)",
        TS,
    ),
    (
        "valid_to",
        "end of validity: the next version's valid_from, or deleted_at; NULL while current",
        TS,
    ),
    ("is_current", "true for the version that is current now (valid_to IS NULL)", BOOL),
    ("observed_at", "when rc-sync first wrote this version", TS),
    ("observed_by", "how it was observed: sync, backfill, webhook or reconcile", TEXT),
    ("deleted_at", "when the order was seen deleted, which closed this version; else NULL", TS),
    ("content_hash", "SHA-256 of the version's canonical source document (object)", TEXT),
)
_HISTORY_NOTE = (
    " Only versions rc-sync observed are here: history starts when it is enabled, and a change "
    "made and undone between two reads is invisible."
)

TABLES.update(
    {
        "order_history": TableDoc(
            "One row per distinct version of an order (a new document content) that rc-sync "
            "observed, with its validity interval." + _HISTORY_NOTE,
            _cols(
                _ORG,
                _ORDER,
                *_VALIDITY,
                ("nested_updated_at", "the version's nested_updated_at", TS),
                ("primary_id", "order id in the originating fulfilment system", TEXT),
                ("order_number", "numeric twin of primary_id, stored verbatim as text", TEXT),
                ("ordered_at", "when the order was finalised", TS),
                ("printed_at", "when the label was printed", TS),
                ("billing_status", "billing.status in this version", TEXT),
                ("billing_subtotal", "billing.subtotal", money("billing_currency")),
                ("billing_total", "billing.total", money("billing_currency")),
                ("billing_currency", "currency of the billing amounts", CURRENCY),
                ("shipping_status", "shipping.status in this version", TEXT),
                ("ship_via", "carrier or shipping service (e.g. UPS)", TEXT),
                ("ship_type", "service level (e.g. Ground)", TEXT),
                ("warehouse", "shipping.warehouse", TEXT),
                ("ship_to_country", "shipping.ship_to.country as received", TEXT),
                ("ship_to_region", "shipping.ship_to.region as received", TEXT),
                ("raw", "the version's document as received", JSON),
                ("normalize_version", "normalization version that typed this row", COUNT),
                _micros("billing_subtotal", "billing_currency"),
                _micros("billing_total", "billing_currency"),
                ("ship_to_country_code", "country_code of ship_to in this version", ISO_COUNTRY),
            ),
        ),
        "box_history": TableDoc(
            "One row per distinct version of a box; a box removed from its order, or an "
            "order deleted, closes it." + _HISTORY_NOTE,
            _cols(
                _ORG,
                _ORDER,
                _BOX,
                *_VALIDITY,
                ("package_type", "package type", TEXT),
                ("tracking_number", "carrier tracking number", TEXT),
                ("delivered_at", "when the carrier reported delivery", TS),
                ("weight_g", "weight", GRAMS),
                ("ship_cost", "shipping cost", money("currency")),
                ("currency", "currency of ship_cost", CURRENCY),
                _micros("ship_cost", "currency"),
            ),
        ),
        "item_history": TableDoc(
            "One row per distinct version of an item line; removal of the item, its box or "
            "the order closes it." + _HISTORY_NOTE,
            _cols(
                _ORG,
                _ORDER,
                _BOX,
                _ITEM,
                *_VALIDITY,
                ("kind", "item kind as received", TEXT),
                ("part_number", "SKU / part number", TEXT),
                ("quantity", "quantity", COUNT),
                ("unit_price", "price per unit", money("currency")),
                ("currency", "currency of unit_price", CURRENCY),
                _micros("unit_price", "currency"),
                LINE_KIND,
            ),
        ),
    }
)

VIEWS: dict[str, TableDoc] = {
    "order_lines": TableDoc(
        "One row per item with its order, box and ship_to context; deleted orders excluded.",
        _cols(
            _ORG,
            _ORDER,
            _BOX,
            _ITEM,
            ("primary_id", "orders.primary_id", TEXT),
            ("order_number", "orders.order_number", TEXT),
            ("ordered_at", "orders.ordered_at", TS),
            ("nested_updated_at", "orders.nested_updated_at", TS),
            ("billing_status", "orders.billing_status", TEXT),
            ("billing_currency", "orders.billing_currency", CURRENCY),
            ("shipping_status", "orders.shipping_status", TEXT),
            ("ship_via", "orders.ship_via", TEXT),
            ("ship_type", "orders.ship_type", TEXT),
            ("warehouse", "orders.warehouse", TEXT),
            ("tracking_number", "boxes.tracking_number", TEXT),
            ("package_type", "boxes.package_type", TEXT),
            ("delivered_at", "boxes.delivered_at", TS),
            ("kind", "items.kind", TEXT),
            ("part_number", "items.part_number (SKU)", TEXT),
            ("code", "items.code", TEXT),
            ("description", "items.description", TEXT),
            ("quantity", "items.quantity", COUNT),
            ("unit_price", "items.unit_price", money("currency")),
            ("currency", "items.currency", CURRENCY),
            (
                "line_total",
                "unit_price x quantity (exact on both databases: on SQLite computed from the "
                "micros)",
                money("currency"),
            ),
            ("unit_weight_g", "items.unit_weight_g", GRAMS),
            ("line_weight_g", "unit_weight_g x quantity", GRAMS),
            ("pick_location", "items.pick_location", TEXT),
            ("origin_country_code", "items.origin_country_code", TEXT),
            ("ship_to_first_name", "ship_to first name", TEXT),
            ("ship_to_last_name", "ship_to last name", TEXT),
            ("ship_to_company", "ship_to company", TEXT),
            ("ship_to_city", "ship_to city", TEXT),
            ("ship_to_region", "ship_to region", TEXT),
            ("ship_to_post_code", "ship_to postal code", TEXT),
            ("ship_to_country", "ship_to country as written at the source", TEXT),
            ("line_kind", "items.line_kind", TEXT),
            ("units", "quantity for goods lines, 0 for the others (sum it to count goods)", COUNT),
            ("unit_price_micros", "items.unit_price_micros", micros("currency")),
            ("line_total_micros", "unit_price_micros x quantity", micros("currency")),
            ("ship_to_country_code", "ship_to country_code", ISO_COUNTRY),
        ),
        kind="view",
    ),
    "daily_order_summary": TableDoc(
        "Per org, UTC day of ordered_at and billing currency: order, item and money totals "
        "(deleted orders and orders without ordered_at excluded).",
        _cols(
            _ORG,
            ("day", "UTC calendar day of ordered_at", "date"),
            ("billing_currency", "billing currency of the orders", CURRENCY),
            ("orders", "number of orders", COUNT),
            ("items", "number of goods lines (line_kind goods)", COUNT),
            ("units", "sum of the goods lines' quantities", COUNT),
            ("billing_subtotal", "sum of billing_subtotal (exact)", money("billing_currency")),
            ("billing_shipping", "sum of billing_shipping (exact)", money("billing_currency")),
            ("billing_tax", "sum of billing_tax (exact)", money("billing_currency")),
            ("billing_total", "sum of billing_total (exact)", money("billing_currency")),
            (
                "billing_subtotal_micros",
                "sum of billing_subtotal_micros",
                micros("billing_currency"),
            ),
            (
                "billing_shipping_micros",
                "sum of billing_shipping_micros",
                micros("billing_currency"),
            ),
            ("billing_tax_micros", "sum of billing_tax_micros", micros("billing_currency")),
            ("billing_total_micros", "sum of billing_total_micros", micros("billing_currency")),
        ),
        kind="view",
    ),
    "order_status_changes": TableDoc(
        "One row per observed change of an order's shipping or billing status, from "
        "order_history (the first version rc-sync saw of an order is not a change).",
        _cols(
            _ORG,
            _ORDER,
            ("field", "shipping_status or billing_status", TEXT),
            ("from_value", "status before the change", TEXT),
            ("to_value", "status after the change", TEXT),
            ("changed_at", "valid_from of the version that showed the new status", TS),
        ),
        kind="view",
    ),
}

# Sample queries: (title, PostgreSQL form, SQLite form or "" when the same SQL runs on both).
# tests/warehouse/test_doc_queries.py runs every SQL block of docs/warehouse.md and README.md.
SAMPLE_QUERIES: list[tuple[str, str, str]] = [
    (
        "Revenue per day and currency for the last 30 days",
        "SELECT day, billing_currency, orders, billing_total\n"
        "FROM daily_order_summary\n"
        "WHERE day >= CURRENT_DATE - 30\n"
        "ORDER BY day, billing_currency;",
        # SQLite has no date type: CURRENT_DATE - 30 is a number there, and every day passes.
        "SELECT day, billing_currency, orders, billing_total\n"
        "FROM daily_order_summary\n"
        "WHERE day >= DATE('now', '-30 days')\n"
        "ORDER BY day, billing_currency;",
    ),
    (
        "Revenue per currency, exact on both databases",
        "SELECT billing_currency, COUNT(*) AS orders,\n"
        "       SUM(billing_total_micros) / 1000000.0 AS billing_total\n"
        "FROM orders WHERE deleted_at IS NULL\n"
        "GROUP BY billing_currency ORDER BY billing_currency;",
        "",
    ),
    (
        "Best-selling SKUs",
        "SELECT part_number, SUM(units) AS units, COUNT(DISTINCT order_pk) AS orders\n"
        "FROM order_lines\n"
        "WHERE line_kind = 'goods'\n"
        "GROUP BY part_number\n"
        "ORDER BY units DESC\n"
        "LIMIT 20;",
        "",
    ),
    (
        "Find an order by tracking number",
        "SELECT o.primary_id, o.ordered_at, b.tracking_number, b.delivered_at\n"
        "FROM boxes b JOIN orders o USING (org_pk, order_pk)\n"
        "WHERE b.tracking_number = '1Z4A9F370312345678';",
        "",
    ),
    (
        "Paid orders not yet delivered",
        "SELECT o.org_pk, o.primary_id, o.ordered_at\n"
        "FROM orders o\n"
        "WHERE o.billing_status = 'paid' AND o.deleted_at IS NULL\n"
        "  AND NOT EXISTS (SELECT 1 FROM boxes b WHERE b.org_pk = o.org_pk\n"
        "                  AND b.order_pk = o.order_pk AND b.delivered_at IS NOT NULL);",
        "",
    ),
    (
        "Open load issues per column",
        "SELECT table_name, column_name, COUNT(*) AS issues, MIN(seen_at) AS first_seen\n"
        "FROM load_issues GROUP BY table_name, column_name ORDER BY issues DESC;",
        "",
    ),
    (
        "Sync freshness per org",
        "SELECT org_pk, watermark, last_run_status, last_run_finished_at FROM sync_state;",
        "",
    ),
]


# History queries: (title, PostgreSQL form, SQLite form); run by tests/rc_sync/test_history.py.
HISTORY_QUERIES: list[tuple[str, str, str]] = [
    (
        "Time from order to shipped, per carrier and week",
        "SELECT date_trunc('week', h.ordered_at) AS week, h.ship_via AS carrier,\n"
        "       COUNT(*) AS orders,\n"
        "       AVG(EXTRACT(EPOCH FROM s.shipped_at - h.ordered_at)) / 3600 AS avg_hours\n"
        "FROM (SELECT org_pk, order_pk, MIN(changed_at) AS shipped_at\n"
        "      FROM order_status_changes\n"
        "      WHERE field = 'shipping_status' AND to_value = 'shipped'\n"
        "      GROUP BY org_pk, order_pk) s\n"
        "JOIN order_history h ON h.org_pk = s.org_pk AND h.order_pk = s.order_pk\n"
        "                    AND h.valid_from = s.shipped_at\n"
        "GROUP BY 1, 2 ORDER BY 1, 2;",
        "SELECT DATE(h.ordered_at, 'weekday 0', '-6 days') AS week, h.ship_via AS carrier,\n"
        "       COUNT(*) AS orders,\n"
        "       AVG((julianday(s.shipped_at) - julianday(h.ordered_at)) * 24) AS avg_hours\n"
        "FROM (SELECT org_pk, order_pk, MIN(changed_at) AS shipped_at\n"
        "      FROM order_status_changes\n"
        "      WHERE field = 'shipping_status' AND to_value = 'shipped'\n"
        "      GROUP BY org_pk, order_pk) s\n"
        "JOIN order_history h ON h.org_pk = s.org_pk AND h.order_pk = s.order_pk\n"
        "                    AND h.valid_from = s.shipped_at\n"
        "GROUP BY 1, 2 ORDER BY 1, 2;",
    ),
    (
        "The orders as they were at an instant (orders_as_of): the shipping backlog then",
        "SELECT shipping_status, COUNT(*) AS orders\n"
        "FROM orders_as_of(TIMESTAMPTZ '2026-11-23 00:00:00+00')\n"
        "GROUP BY shipping_status ORDER BY orders DESC;",
        "-- :as_of in the stored form, e.g. '2026-11-23T00:00:00.000000+00:00'\n"
        "SELECT shipping_status, COUNT(*) AS orders\n"
        "FROM order_history\n"
        "WHERE valid_from <= :as_of AND (valid_to IS NULL OR valid_to > :as_of)\n"
        "GROUP BY shipping_status ORDER BY orders DESC;",
    ),
    (
        "Every version of one order, with what its boxes held",
        "SELECT h.valid_from, h.valid_to, h.shipping_status, b.box_pk, b.tracking_number,\n"
        "       i.part_number, i.quantity\n"
        "FROM order_history h\n"
        "LEFT JOIN box_history b ON b.org_pk = h.org_pk AND b.order_pk = h.order_pk\n"
        "  AND b.valid_from <= h.valid_from AND (b.valid_to IS NULL OR b.valid_to > h.valid_from)\n"
        "LEFT JOIN item_history i ON i.org_pk = b.org_pk AND i.order_pk = b.order_pk\n"
        "  AND i.box_pk = b.box_pk\n"
        "  AND i.valid_from <= h.valid_from AND (i.valid_to IS NULL OR i.valid_to > h.valid_from)\n"
        "WHERE h.primary_id = :primary_id\n"
        "ORDER BY h.valid_from, b.box_pk, i.part_number;",
        "",
    ),
]


def describe(table: str, column: str) -> ColumnDoc | None:
    """The dictionary entry of a table or view column, or None."""
    doc = TABLES.get(table) or VIEWS.get(table)
    return doc.columns.get(column) if doc else None
