"""The sandbox's typed data model and its rendering as API JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from rc_common.paths import API_PREFIX

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)


# Digits after the decimal point per currency (ISO 4217 minor units).
MONEY_EXPONENT: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CAD": 2,
    "AUD": 2,
    "CHF": 2,
    "JPY": 0,
}
GRAMS_PER: dict[str, Decimal] = {
    "g": Decimal(1),
    "kg": Decimal(1000),
    "lb": Decimal("453.59237"),
    "lbs": Decimal("453.59237"),
    "oz": Decimal("28.349523125"),
}
METRES_PER: dict[str, Decimal] = {
    "m": Decimal(1),
    "cm": Decimal("0.01"),
    "mm": Decimal("0.001"),
    "in": Decimal("0.0254"),
    "ft": Decimal("0.3048"),
}

JSON = dict[str, Any]


def to_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    return (moment - EPOCH) // ONE_US


def from_us(us: int) -> datetime:
    """The aware UTC datetime `us` microseconds after the Unix epoch."""
    return EPOCH + timedelta(microseconds=us)


def render_dt(moment: datetime | None) -> str | None:
    """API text of a datetime; the style (Z or +00:00, with or without fraction) varies by value."""
    if moment is None:
        return None
    text = moment.isoformat()  # ends with +00:00; no fraction when microsecond == 0
    if (moment.second + moment.minute) % 4:
        return text[:-6] + "Z"
    return text


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in one currency, rendered as "70.59 USD"."""

    amount: Decimal
    currency: str

    def render(self) -> str:
        """The API text of this amount."""
        return f"{plain(self.amount)} {self.currency}"


@dataclass(frozen=True, slots=True)
class Weight:
    """A weight as sent on the wire (value and unit); `grams` is its exact value in grams."""

    value: Decimal
    unit: str

    @property
    def grams(self) -> Decimal:
        """The exact weight in grams."""
        return self.value * GRAMS_PER[self.unit]

    def render(self) -> str:
        """The API text of this weight, e.g. "1247.000 g"."""
        return f"{plain(self.value)} {self.unit}"


@dataclass(frozen=True, slots=True)
class Length:
    """A length as sent on the wire (value and unit); `metres` is its exact value in metres."""

    value: Decimal
    unit: str

    @property
    def metres(self) -> Decimal:
        """The exact length in metres."""
        return self.value * METRES_PER[self.unit]

    def render(self) -> str:
        """The API text of this length, e.g. "0.3048 m"."""
        return f"{plain(self.value)} {self.unit}"


def plain(number: Decimal) -> str:
    """A Decimal as plain digits (never scientific notation)."""
    text = str(number)
    return format(number, "f") if "E" in text else text


def _r(value: Money | Weight | Length | None) -> str | None:
    return None if value is None else value.render()


ADDRESS_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "company",
    "address_1",
    "address_2",
    "city",
    "region",
    "post_code",
    "country",
    "phone",
    "email",
    "residential",
    "validated",
)


@dataclass(slots=True)
class Address:
    """A shipping address inside an order's `shipping` object."""

    first_name: str | None
    last_name: str | None
    company: str | None
    address_1: str | None
    address_2: str | None
    city: str | None
    region: str | None
    post_code: str | None
    country: str | None
    phone: str | None
    email: str | None
    residential: bool | None
    validated: bool | None

    def to_json(self) -> JSON:
        """The API object."""
        return {name: getattr(self, name) for name in ADDRESS_FIELDS}


@dataclass(slots=True)
class Item:
    """One line in a box."""

    pk: str
    kind: str | None
    quantity: int
    part_number: str | None
    code: str | None
    description: str | None
    unit_price: Money | None
    unit_weight: Weight | None
    pick_location: str | None
    origin_country_code: str | None
    ups: str | None
    ean: str | None
    isbn: str | None
    custom_fields: JSON
    created_at: datetime
    updated_at: datetime
    image_link: str | None = None
    link: str | None = None
    customs: JSON | None = None  # joint_production, commodity_code, ... when filled
    poison: dict[str, str] | None = None  # json key -> hostile raw value sent instead


@dataclass(slots=True)
class Box:
    """One package of an order."""

    pk: str
    package_type: str | None
    description: str | None
    length: Length | None
    width: Length | None
    height: Length | None
    weight: Weight | None
    ship_cost: Money | None
    insured_value: Money | None
    declared_value: Money | None
    cod_value: Money | None
    shipper_release: bool
    insurance_type: str | None
    tracking_number: str | None
    confirmation_type: str | None
    cod: str | None
    saturday_delivery: bool
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime
    custom_fields: JSON
    items: list[Item]
    packaging: JSON | None = None
    tracking: list[JSON] = field(default_factory=list)
    poison: dict[str, str] | None = None


ORDER_SCALAR_FIELDS: tuple[str, ...] = (
    "primary_id",
    "unique_id",
    "order_number",
    "customer_number",
    "po_number",
    "message",
    "terms",
)


@dataclass(slots=True)
class Order:
    """An order with its boxes, items and addresses; `cache` holds rendered JSON bytes."""

    org_pk: str
    pk: str
    primary_id: str | None
    unique_id: str | None
    order_number: int | None
    customer_number: str | None
    po_number: str | None
    message: str | None
    terms: str | None
    ordered_at: datetime | None
    printed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    nested_updated_at: datetime
    currency: str
    billing_status: str | None
    billing_subtotal: Money | None
    billing_shipping: Money | None
    billing_tax: Money | None
    billing_total: Money | None
    shipping_status: str | None
    ship_via: str | None
    ship_type: str | None
    warehouse: str | None
    ship_to: Address | None
    ship_from: Address | None
    source_name: str | None
    tags: list[str]
    custom_fields: JSON
    boxes: list[Box]
    poison: dict[str, str] | None = None  # "ordered_at", "billing.tax", ... -> raw value
    cache: dict[str, bytes] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Host-relative url of the order."""
        return f"{API_PREFIX}/orgs/{self.org_pk}/orders/{self.pk}/"


def box_url(org_pk: str, order_pk: str, box_pk: str) -> str:
    """Host-relative url of a box."""
    return f"{API_PREFIX}/orgs/{org_pk}/orders/{order_pk}/boxes/{box_pk}/"


def item_url(org_pk: str, order_pk: str, box_pk: str, item_pk: str) -> str:
    """Host-relative url of an item."""
    return f"{API_PREFIX}/orgs/{org_pk}/orders/{order_pk}/boxes/{box_pk}/items/{item_pk}/"


_CUSTOMS_KEYS = (
    "joint_production",
    "commodity_code",
    "net_cost_code",
    "net_cost_begin_date",
    "net_cost_end_date",
    "export_type_code",
    "preference_criteria_code",
    "producer_info_code",
    "scheduleb_commodity_code",
)
_NO_CUSTOMS: JSON = dict.fromkeys(_CUSTOMS_KEYS)


def item_json(order: Order, box: Box, item: Item) -> JSON:
    """The API object of an item."""
    doc: JSON = {
        "url": item_url(order.org_pk, order.pk, box.pk, item.pk),
        "kind": item.kind,
        "quantity": item.quantity,
        "part_number": item.part_number,
        "code": item.code,
        "description": item.description,
        "unit_price": _r(item.unit_price),
        "unit_weight": _r(item.unit_weight),
        "image_link": item.image_link,
        "pick_location": item.pick_location,
        "link": item.link,
        "origin_country_code": item.origin_country_code,
    }
    doc.update(item.customs or _NO_CUSTOMS)
    doc["ups"] = item.ups
    doc["ean"] = item.ean
    doc["isbn"] = item.isbn
    doc["custom_fields"] = item.custom_fields
    doc["created_at"] = render_dt(item.created_at)
    doc["updated_at"] = render_dt(item.updated_at)
    if item.poison:
        doc.update(item.poison)
    return doc


def box_json(order: Order, box: Box, expand_items: bool) -> JSON:
    """The API object of a box; items are `{"url": ...}` stubs unless `expand_items`."""
    url = box_url(order.org_pk, order.pk, box.pk)
    if expand_items:
        items: list[JSON] = [item_json(order, box, item) for item in box.items]
    else:
        items = [{"url": f"{url}items/{item.pk}/"} for item in box.items]
    doc: JSON = {
        "url": url,
        "package_type": box.package_type,
        "description": box.description,
        "length": _r(box.length),
        "width": _r(box.width),
        "height": _r(box.height),
        "weight": _r(box.weight),
        "ship_cost": _r(box.ship_cost),
        "shipper_release": box.shipper_release,
        "insured_value": _r(box.insured_value),
        "insurance_type": box.insurance_type,
        "declared_value": _r(box.declared_value),
        "tracking_number": box.tracking_number,
        "confirmation_type": box.confirmation_type,
        "cod": box.cod,
        "cod_value": _r(box.cod_value),
        "saturday_delivery": box.saturday_delivery,
        "delivered_at": render_dt(box.delivered_at),
        "created_at": render_dt(box.created_at),
        "updated_at": render_dt(box.updated_at),
        "packaging": box.packaging,
        "custom_fields": box.custom_fields,
        "shipping_docs": [],
        "tracking": box.tracking,
        "items": items,
    }
    if box.poison:
        doc.update(box.poison)
    return doc


def order_json(order: Order, expand_boxes: bool, expand_items: bool) -> JSON:
    """The API object of an order; boxes are stubs unless `expand_boxes`."""
    if expand_boxes:
        boxes: list[JSON] = [box_json(order, box, expand_items) for box in order.boxes]
    else:
        url = order.url
        boxes = [{"url": f"{url}boxes/{box.pk}/"} for box in order.boxes]
    billing: JSON = {
        "status": order.billing_status,
        "subtotal": _r(order.billing_subtotal),
        "shipping": _r(order.billing_shipping),
        "tax": _r(order.billing_tax),
        "total": _r(order.billing_total),
    }
    shipping: JSON = {
        "status": order.shipping_status,
        "ship_via": order.ship_via,
        "ship_type": order.ship_type,
        "warehouse": order.warehouse,
        "ship_to": order.ship_to.to_json() if order.ship_to else None,
        "ship_from": order.ship_from.to_json() if order.ship_from else None,
    }
    doc: JSON = {
        "url": order.url,
        "primary_id": order.primary_id,
        "unique_id": order.unique_id,
        "order_number": order.order_number,
        "customer_number": order.customer_number,
        "po_number": order.po_number,
        "message": order.message,
        "terms": order.terms,
        "ordered_at": render_dt(order.ordered_at),
        "printed_at": render_dt(order.printed_at),
        "created_at": render_dt(order.created_at),
        "updated_at": render_dt(order.updated_at),
        "nested_updated_at": render_dt(order.nested_updated_at),
        "billing": billing,
        "shipping": shipping,
        "source": {"name": order.source_name},
        "custom_fields": order.custom_fields,
        "notes": [],
        "tags": order.tags,
        "relations": [],
        "boxes": boxes,
    }
    if order.poison:
        for key, raw in order.poison.items():
            if key.startswith("billing."):
                billing[key[len("billing.") :]] = raw
            else:
                doc[key] = raw
    return doc


def dumps(doc: Any) -> bytes:
    """Compact UTF-8 JSON, as Django REST framework renders it (unicode kept, not escaped)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# Representations of an order that are cached as bytes.
REPRESENTATIONS: dict[str, tuple[bool, bool]] = {
    "expanded": (True, True),  # expand=boxes,items
    "boxes": (True, False),  # expand=boxes
    "stubs": (False, False),  # no expand (expand=items alone changes nothing on orders)
}


# Compact representations (`only=`): name -> fields, in the order they are written.
COMPACT: dict[str, tuple[str, ...]] = {
    "compact": ("url", "nested_updated_at"),
    "only:url": ("url",),
    "only:nested_updated_at": ("nested_updated_at",),
}


def order_bytes(order: Order, representation: str) -> bytes:
    """Rendered JSON of an order in one representation, cached on the order."""
    cached = order.cache.get(representation)
    if cached is None:
        if representation in COMPACT:
            values = {"url": order.url, "nested_updated_at": render_dt(order.nested_updated_at)}
            cached = dumps({name: values[name] for name in COMPACT[representation]})
        else:
            cached = dumps(order_json(order, *REPRESENTATIONS[representation]))
        order.cache[representation] = cached
    return cached
