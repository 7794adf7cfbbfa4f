"""What the warehouse must hold for the sandbox's data, computed from the sandbox's typed model.

Test-only: the expectations come from the generator's own typed values (Decimal amounts,
grams, metres, aware datetimes), never from rc-sync's parsers, so a parser bug cannot hide
behind an expectation computed the same way.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from rc_common.tables import DATA_TABLES
from rc_sandbox.model import (
    ADDRESS_FIELDS,
    JSON,
    Length,
    Money,
    Order,
    Weight,
    box_url,
    item_url,
)
from rc_sandbox.store import SandboxStore


def expected_rows(
    store: SandboxStore,
    org_pk: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Warehouse rows (CONTRACT.md columns/units) of orders with since <= nested_updated_at < until."""
    out: dict[str, list[dict[str, Any]]] = {table: [] for table in DATA_TABLES}
    for order in store.orders_in_window(org_pk, since, until):
        for table, rows in expected_order_rows(order).items():
            out[table].extend(rows)
    return out


def expected_issues(
    store: SandboxStore,
    org_pk: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[tuple[str, str, str, str, str]]:
    """(org_pk, order_pk, table, column, raw_value) of every poisoned value in the window."""
    return [
        issue
        for order in store.orders_in_window(org_pk, since, until)
        for issue in expected_order_issues(order)
    ]


# Where a poisoned JSON key lands in the warehouse: (table, json key) -> column.
POISON_COLUMNS: dict[tuple[str, str], str] = {
    ("orders", "ordered_at"): "ordered_at",
    ("orders", "billing.tax"): "billing_tax",
    ("orders", "billing.total"): "billing_total",
    ("boxes", "weight"): "weight_g",
    ("boxes", "length"): "length_m",
    ("boxes", "ship_cost"): "ship_cost",
    ("boxes", "delivered_at"): "delivered_at",
    ("items", "unit_weight"): "unit_weight_g",
    ("items", "quantity"): "quantity",
}


def _amount(value: Money | None) -> Decimal | None:
    return None if value is None else value.amount


def _currency(*values: Money | None) -> str | None:
    for value in values:
        if value is not None:
            return value.currency
    return None


def _grams(value: Weight | None) -> Decimal | None:
    return None if value is None else value.grams


def _metres(value: Length | None) -> Decimal | None:
    return None if value is None else value.metres


def _poisoned(row: JSON, table: str, poison: dict[str, str] | None) -> JSON:
    if poison:
        for key in poison:
            row[POISON_COLUMNS[(table, key)]] = None
    return row


def expected_order_rows(order: Order) -> dict[str, list[JSON]]:
    """The warehouse rows (CONTRACT.md columns and units) that an order should become."""
    org, opk = order.org_pk, order.pk
    row: JSON = {
        "org_pk": org,
        "order_pk": opk,
        "url": order.url,
        "primary_id": order.primary_id,
        "unique_id": order.unique_id,
        "order_number": order.order_number,
        "customer_number": order.customer_number,
        "po_number": order.po_number,
        "message": order.message,
        "terms": order.terms,
        "ordered_at": order.ordered_at,
        "printed_at": order.printed_at,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "nested_updated_at": order.nested_updated_at,
        "billing_status": order.billing_status,
        "billing_subtotal": _amount(order.billing_subtotal),
        "billing_shipping": _amount(order.billing_shipping),
        "billing_tax": _amount(order.billing_tax),
        "billing_total": _amount(order.billing_total),
        "billing_currency": _currency(
            order.billing_subtotal, order.billing_shipping, order.billing_tax, order.billing_total
        ),
        "shipping_status": order.shipping_status,
        "ship_via": order.ship_via,
        "ship_type": order.ship_type,
        "warehouse": order.warehouse,
        "source_name": order.source_name,
        "tags": list(order.tags),
        "custom_fields": json.loads(json.dumps(order.custom_fields)),
    }
    boxes: list[JSON] = []
    items: list[JSON] = []
    for box in order.boxes:
        boxes.append(
            _poisoned(
                {
                    "org_pk": org,
                    "order_pk": opk,
                    "box_pk": box.pk,
                    "url": box_url(org, opk, box.pk),
                    "package_type": box.package_type,
                    "description": box.description,
                    "length_m": _metres(box.length),
                    "width_m": _metres(box.width),
                    "height_m": _metres(box.height),
                    "weight_g": _grams(box.weight),
                    "ship_cost": _amount(box.ship_cost),
                    "insured_value": _amount(box.insured_value),
                    "declared_value": _amount(box.declared_value),
                    "cod_value": _amount(box.cod_value),
                    "currency": _currency(
                        box.ship_cost, box.insured_value, box.declared_value, box.cod_value
                    ),
                    "tracking_number": box.tracking_number,
                    "confirmation_type": box.confirmation_type,
                    "insurance_type": box.insurance_type,
                    "cod": box.cod,
                    "shipper_release": box.shipper_release,
                    "saturday_delivery": box.saturday_delivery,
                    "delivered_at": box.delivered_at,
                    "created_at": box.created_at,
                    "updated_at": box.updated_at,
                    "custom_fields": json.loads(json.dumps(box.custom_fields)),
                },
                "boxes",
                box.poison,
            )
        )
        for item in box.items:
            items.append(
                _poisoned(
                    {
                        "org_pk": org,
                        "order_pk": opk,
                        "box_pk": box.pk,
                        "item_pk": item.pk,
                        "url": item_url(org, opk, box.pk, item.pk),
                        "kind": item.kind,
                        "quantity": item.quantity,
                        "part_number": item.part_number,
                        "code": item.code,
                        "description": item.description,
                        "unit_price": _amount(item.unit_price),
                        "currency": _currency(item.unit_price),
                        "unit_weight_g": _grams(item.unit_weight),
                        "pick_location": item.pick_location,
                        "origin_country_code": item.origin_country_code,
                        "ean": item.ean,
                        "isbn": item.isbn,
                        "ups": item.ups,
                        "custom_fields": json.loads(json.dumps(item.custom_fields)),
                        "created_at": item.created_at,
                        "updated_at": item.updated_at,
                    },
                    "items",
                    item.poison,
                )
            )
    addresses: list[JSON] = []
    for role, address in (("ship_to", order.ship_to), ("ship_from", order.ship_from)):
        if address is not None:
            entry: JSON = {"org_pk": org, "order_pk": opk, "role": role}
            entry.update({name: getattr(address, name) for name in ADDRESS_FIELDS})
            addresses.append(entry)
    return {
        "orders": [_poisoned(row, "orders", order.poison)],
        "boxes": boxes,
        "items": items,
        "addresses": addresses,
    }


def expected_order_issues(order: Order) -> list[tuple[str, str, str, str, str]]:
    """(org_pk, order_pk, table, column, raw_value) for each poisoned value of an order."""
    found: list[tuple[str, str, str, str, str]] = []
    for table, poison in (
        [("orders", order.poison)]
        + [("boxes", box.poison) for box in order.boxes]
        + [("items", item.poison) for box in order.boxes for item in box.items]
    ):
        for key, raw in (poison or {}).items():
            found.append((order.org_pk, order.pk, table, POISON_COLUMNS[(table, key)], raw))
    return found
