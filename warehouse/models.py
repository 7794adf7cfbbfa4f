"""SQLAlchemy 2.0 typed models of the warehouse tables (CONTRACT.md names; extend, never rename)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from warehouse import dictionary
from warehouse.types import DecimalNumber, UTCDateTime, json_type

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = json_type()


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention and the shared type map."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        Decimal: DecimalNumber(),
        str: sa.Text(),
        int: sa.BigInteger(),
        bool: sa.Boolean(),
        date: sa.Date(),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
        Any: JSONType,
    }


def _key() -> Any:
    return mapped_column(sa.Text(), primary_key=True)


class Order(Base):
    """One ReadyCloud order (current state), keyed by org and order pk."""

    __tablename__ = "orders"

    org_pk: Mapped[str] = _key()
    order_pk: Mapped[str] = _key()
    url: Mapped[str | None]
    primary_id: Mapped[str | None] = mapped_column(index=True)
    unique_id: Mapped[str | None]
    order_number: Mapped[str | None]
    customer_number: Mapped[str | None]
    po_number: Mapped[str | None]
    message: Mapped[str | None]
    terms: Mapped[str | None]
    ordered_at: Mapped[datetime | None] = mapped_column(index=True)
    printed_at: Mapped[datetime | None]
    created_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
    nested_updated_at: Mapped[datetime | None] = mapped_column(index=True)
    billing_status: Mapped[str | None]
    billing_subtotal: Mapped[Decimal | None]
    billing_shipping: Mapped[Decimal | None]
    billing_tax: Mapped[Decimal | None]
    billing_total: Mapped[Decimal | None]
    billing_currency: Mapped[str | None]
    shipping_status: Mapped[str | None]
    ship_via: Mapped[str | None]
    ship_type: Mapped[str | None]
    warehouse: Mapped[str | None]
    source_name: Mapped[str | None]
    tags: Mapped[list[Any] | None]
    custom_fields: Mapped[dict[str, Any] | None]
    raw: Mapped[dict[str, Any] | None]
    content_hash: Mapped[str | None]
    deleted_at: Mapped[datetime | None] = mapped_column(index=True)
    synced_at: Mapped[datetime]
    normalize_version: Mapped[int | None]
    # Exact integer twins of the money columns (millionths of the currency unit).
    billing_subtotal_micros: Mapped[int | None]
    billing_shipping_micros: Mapped[int | None]
    billing_tax_micros: Mapped[int | None]
    billing_total_micros: Mapped[int | None]


class Box(Base):
    """One box (package) of an order."""

    __tablename__ = "boxes"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["org_pk", "order_pk"], ["orders.org_pk", "orders.order_pk"], ondelete="CASCADE"
        ),
    )

    org_pk: Mapped[str] = _key()
    order_pk: Mapped[str] = _key()
    box_pk: Mapped[str] = _key()
    url: Mapped[str | None]
    package_type: Mapped[str | None]
    description: Mapped[str | None]
    length_m: Mapped[Decimal | None]
    width_m: Mapped[Decimal | None]
    height_m: Mapped[Decimal | None]
    weight_g: Mapped[Decimal | None]
    ship_cost: Mapped[Decimal | None]
    insured_value: Mapped[Decimal | None]
    declared_value: Mapped[Decimal | None]
    cod_value: Mapped[Decimal | None]
    currency: Mapped[str | None]
    tracking_number: Mapped[str | None] = mapped_column(index=True)
    confirmation_type: Mapped[str | None]
    insurance_type: Mapped[str | None]
    cod: Mapped[str | None]
    shipper_release: Mapped[bool | None]
    saturday_delivery: Mapped[bool | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
    custom_fields: Mapped[dict[str, Any] | None]
    synced_at: Mapped[datetime]
    ship_cost_micros: Mapped[int | None]
    insured_value_micros: Mapped[int | None]
    declared_value_micros: Mapped[int | None]
    cod_value_micros: Mapped[int | None]


class Item(Base):
    """One item line inside a box."""

    __tablename__ = "items"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["org_pk", "order_pk", "box_pk"],
            ["boxes.org_pk", "boxes.order_pk", "boxes.box_pk"],
            ondelete="CASCADE",
        ),
    )

    org_pk: Mapped[str] = _key()
    order_pk: Mapped[str] = _key()
    box_pk: Mapped[str] = _key()
    item_pk: Mapped[str] = _key()
    url: Mapped[str | None]
    kind: Mapped[str | None]
    quantity: Mapped[int | None]
    part_number: Mapped[str | None] = mapped_column(index=True)
    code: Mapped[str | None]
    description: Mapped[str | None]
    unit_price: Mapped[Decimal | None]
    currency: Mapped[str | None]
    unit_weight_g: Mapped[Decimal | None]
    pick_location: Mapped[str | None]
    origin_country_code: Mapped[str | None]
    ean: Mapped[str | None]
    isbn: Mapped[str | None]
    ups: Mapped[str | None]
    custom_fields: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
    synced_at: Mapped[datetime]
    unit_price_micros: Mapped[int | None]
    line_kind: Mapped[str | None]


class Address(Base):
    """The ship_to / ship_from address of an order."""

    __tablename__ = "addresses"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["org_pk", "order_pk"], ["orders.org_pk", "orders.order_pk"], ondelete="CASCADE"
        ),
        sa.CheckConstraint("role IN ('ship_to', 'ship_from')", name="role"),
    )

    org_pk: Mapped[str] = _key()
    order_pk: Mapped[str] = _key()
    role: Mapped[str] = _key()
    first_name: Mapped[str | None]
    last_name: Mapped[str | None]
    company: Mapped[str | None]
    address_1: Mapped[str | None]
    address_2: Mapped[str | None]
    city: Mapped[str | None]
    region: Mapped[str | None]
    post_code: Mapped[str | None]
    country: Mapped[str | None]
    email: Mapped[str | None]
    phone: Mapped[str | None]
    residential: Mapped[bool | None]
    validated: Mapped[bool | None]
    synced_at: Mapped[datetime]
    country_code: Mapped[str | None]


class LoadIssue(Base):
    """A field value of an order that could not be parsed (the column holds NULL instead)."""

    __tablename__ = "load_issues"

    org_pk: Mapped[str] = _key()
    order_pk: Mapped[str] = _key()
    table_name: Mapped[str] = _key()
    row_key: Mapped[str] = _key()
    column_name: Mapped[str] = _key()
    raw_value: Mapped[str | None]
    message: Mapped[str]
    seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class SyncState(Base):
    """Per-org bookkeeping: the live watermark and the last run."""

    __tablename__ = "sync_state"

    org_pk: Mapped[str] = _key()
    watermark: Mapped[datetime | None]
    watermark_updated_at: Mapped[datetime | None]
    last_run_id: Mapped[int | None]
    last_run_kind: Mapped[str | None]
    last_run_started_at: Mapped[datetime | None]
    last_run_finished_at: Mapped[datetime | None]
    last_run_status: Mapped[str | None]
    capabilities: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime]


class SyncRun(Base):
    """One rc-sync run (sync, backfill, reconcile...)."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(sa.Integer(), primary_key=True, autoincrement=True)
    kind: Mapped[str]
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None]
    status: Mapped[str]
    orgs: Mapped[list[Any] | None]
    counts: Mapped[dict[str, Any] | None]
    requests: Mapped[int | None]
    retries: Mapped[int | None]
    throttled: Mapped[int | None]
    error: Mapped[str | None]
    host: Mapped[str | None]
    pid: Mapped[int | None]


class BackfillProgress(Base):
    """A UTC day of a keyed backfill that has been fully loaded (for resume)."""

    __tablename__ = "backfill_progress"

    org_pk: Mapped[str] = _key()
    key: Mapped[str] = _key()
    day: Mapped[date] = mapped_column(sa.Date(), primary_key=True)
    finished_at: Mapped[datetime]


class WebhookEvent(Base):
    """One accepted webhook delivery, committed before it was acknowledged."""

    __tablename__ = "webhook_events"
    __table_args__ = (sa.Index("ix_webhook_events_org_pk_order_pk", "org_pk", "order_pk"),)

    id: Mapped[int] = mapped_column(sa.Integer(), primary_key=True, autoincrement=True)
    org_pk: Mapped[str]
    entity: Mapped[str]
    method: Mapped[str]
    object_url: Mapped[str | None]
    order_pk: Mapped[str | None]
    body: Mapped[Any | None]
    content_hash: Mapped[str]
    received_at: Mapped[datetime] = mapped_column(index=True)
    nested_updated_at: Mapped[datetime | None]
    applied_at: Mapped[datetime | None] = mapped_column(index=True)
    outcome: Mapped[str | None]
    requests: Mapped[int | None]
    poll_verdict: Mapped[str | None]
    polled_at: Mapped[datetime | None]


class WebhookRegistration(Base):
    """A webhook rc-sync registered: the SHA-256 of its token, never the token itself."""

    __tablename__ = "webhook_registrations"

    org_pk: Mapped[str] = _key()
    webhook_url: Mapped[str] = _key()
    entity: Mapped[str]
    remote_url: Mapped[str]
    token_sha256: Mapped[str]
    registered_at: Mapped[datetime]
    suspended_at: Mapped[datetime | None]
    checked_at: Mapped[datetime | None]


class WebhookPollCheck(Base):
    """What one incremental poll found about webhook freshness for one org."""

    __tablename__ = "webhook_poll_checks"

    id: Mapped[int] = mapped_column(sa.Integer(), primary_key=True, autoincrement=True)
    org_pk: Mapped[str] = mapped_column(index=True)
    polled_at: Mapped[datetime] = mapped_column(index=True)
    hits: Mapped[int]
    misses: Mapped[int]


class _Validity:
    """The validity columns shared by the history tables (see docs/design.md "History")."""

    valid_from: Mapped[datetime] = mapped_column(primary_key=True)
    valid_to: Mapped[datetime | None]
    is_current: Mapped[bool]
    observed_at: Mapped[datetime]
    observed_by: Mapped[str]
    deleted_at: Mapped[datetime | None]
    content_hash: Mapped[str]


class OrderHistory(_Validity, Base):
    """One row per distinct version of an order that rc-sync observed."""

    __tablename__ = "order_history"
    __table_args__ = (sa.Index(None, "org_pk", "is_current", "valid_from"),)

    org_pk: Mapped[str] = _key()
    order_pk: Mapped[str] = _key()
    nested_updated_at: Mapped[datetime | None]
    primary_id: Mapped[str | None]
    order_number: Mapped[str | None]
    ordered_at: Mapped[datetime | None]
    printed_at: Mapped[datetime | None]
    billing_status: Mapped[str | None]
    billing_subtotal: Mapped[Decimal | None]
    billing_total: Mapped[Decimal | None]
    billing_currency: Mapped[str | None]
    shipping_status: Mapped[str | None]
    ship_via: Mapped[str | None]
    ship_type: Mapped[str | None]
    warehouse: Mapped[str | None]
    ship_to_country: Mapped[str | None]
    ship_to_region: Mapped[str | None]
    raw: Mapped[dict[str, Any] | None]
    normalize_version: Mapped[int | None]
    billing_subtotal_micros: Mapped[int | None]
    billing_total_micros: Mapped[int | None]
    ship_to_country_code: Mapped[str | None]


class BoxHistory(_Validity, Base):
    """One row per distinct version of a box (validity follows the order's versions)."""

    __tablename__ = "box_history"

    org_pk: Mapped[str] = _key()
    order_pk: Mapped[str] = _key()
    box_pk: Mapped[str] = _key()
    package_type: Mapped[str | None]
    tracking_number: Mapped[str | None]
    delivered_at: Mapped[datetime | None]
    weight_g: Mapped[Decimal | None]
    ship_cost: Mapped[Decimal | None]
    currency: Mapped[str | None]
    ship_cost_micros: Mapped[int | None]


class ItemHistory(_Validity, Base):
    """One row per distinct version of an item line (validity follows the order's versions)."""

    __tablename__ = "item_history"

    org_pk: Mapped[str] = _key()
    order_pk: Mapped[str] = _key()
    box_pk: Mapped[str] = _key()
    item_pk: Mapped[str] = _key()
    kind: Mapped[str | None]
    part_number: Mapped[str | None]
    quantity: Mapped[int | None]
    unit_price: Mapped[Decimal | None]
    currency: Mapped[str | None]
    unit_price_micros: Mapped[int | None]
    line_kind: Mapped[str | None]


class ApiBudget(Base):
    """The shared request budget of one App on one host (see warehouse.budget)."""

    __tablename__ = "api_budget"

    key: Mapped[str] = _key()
    rate: Mapped[str | None]
    paused_until: Mapped[float | None] = mapped_column(sa.Float(precision=53))
    throttle_level: Mapped[int] = mapped_column(default=0)
    throttled_total: Mapped[int] = mapped_column(default=0)
    refresh_seen_at: Mapped[float | None] = mapped_column(sa.Float(precision=53))
    updated_at: Mapped[datetime]


class ApiRequest(Base):
    """One request granted by the shared budget (the sliding window's ledger)."""

    __tablename__ = "api_requests"
    __table_args__ = (sa.Index("ix_api_requests_key_sent_at", "key", "sent_at"),)

    id: Mapped[int] = mapped_column(sa.Integer(), primary_key=True, autoincrement=True)
    key: Mapped[str]
    sent_at: Mapped[float] = mapped_column(sa.Float(precision=53))
    purpose: Mapped[str]
    priority: Mapped[str]


metadata = Base.metadata
orders_table = cast(sa.Table, Order.__table__)
boxes_table = cast(sa.Table, Box.__table__)
items_table = cast(sa.Table, Item.__table__)
addresses_table = cast(sa.Table, Address.__table__)
load_issues_table = cast(sa.Table, LoadIssue.__table__)
sync_state_table = cast(sa.Table, SyncState.__table__)
sync_runs_table = cast(sa.Table, SyncRun.__table__)
backfill_progress_table = cast(sa.Table, BackfillProgress.__table__)
webhook_events_table = cast(sa.Table, WebhookEvent.__table__)
webhook_registrations_table = cast(sa.Table, WebhookRegistration.__table__)
webhook_poll_checks_table = cast(sa.Table, WebhookPollCheck.__table__)
api_budget_table = cast(sa.Table, ApiBudget.__table__)
api_requests_table = cast(sa.Table, ApiRequest.__table__)


order_history_table = cast(sa.Table, OrderHistory.__table__)
box_history_table = cast(sa.Table, BoxHistory.__table__)
item_history_table = cast(sa.Table, ItemHistory.__table__)
HISTORY_TABLES = ("order_history", "box_history", "item_history")


def _attach_comments() -> None:
    """Copy table and column descriptions from the data dictionary onto the metadata."""
    for table in metadata.sorted_tables:
        doc = dictionary.TABLES.get(table.name)
        if doc is None:
            continue
        table.comment = doc.description
        for column in table.columns:
            col_doc = doc.columns.get(column.name)
            if col_doc is not None:
                column.comment = col_doc.comment()


_attach_comments()
