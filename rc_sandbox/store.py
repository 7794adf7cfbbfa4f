"""The sandbox's data: generated orgs and orders, sorted indexes, queries, mutations, expectations."""

from __future__ import annotations

import gc
import json
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sortedcontainers import SortedList

from rc_common.timefmt import parse_api_datetime, utc_now
from rc_sandbox.config import SandboxConfig
from rc_sandbox.generator import (
    DATA_SPAN_US,
    DAY,
    MINUTE,
    SECOND,
    DataGenerator,
    org_pk_for,
)
from rc_sandbox.model import (
    ADDRESS_FIELDS,
    GRAMS_PER,
    METRES_PER,
    Address,
    Box,
    Item,
    Length,
    Money,
    Order,
    Weight,
    box_json,
    from_us,
    item_json,
    order_bytes,
    to_us,
)

# Orders can be sorted (and range-filtered cheaply) on these fields.
INDEXED_FIELDS: tuple[str, ...] = ("created_at", "updated_at", "nested_updated_at", "ordered_at")
# Datetime fields that accept __gte/__gt/__lte/__lt filters.
DATETIME_FILTER_FIELDS: tuple[str, ...] = (*INDEXED_FIELDS, "printed_at")
DEFAULT_ORDERING = "created_at"
# Sort key of a null datetime: before every real one.
NULL_US = -(1 << 62)

Key = tuple[int, str]


@dataclass(frozen=True)
class OrderQuery:
    """A list request's filters and ordering, with datetime ranges as [lo, hi) microseconds."""

    ranges: tuple[tuple[str, int | None, int | None], ...] = ()
    primary_id: str | None = None
    billing_in: frozenset[str] | None = None
    shipping_in: frozenset[str | None] | None = None
    ordering: str = DEFAULT_ORDERING
    descending: bool = False


class _Org:
    """One org's orders and indexes."""

    def __init__(self, pk: str, doc: dict[str, Any]) -> None:
        self.pk = pk
        self.doc = doc
        self.orders: dict[str, Order] = {}
        self.keys: dict[str, dict[str, int]] = {}  # order pk -> field -> microseconds
        self.index: dict[str, SortedList] = {}
        self.by_primary: dict[str | None, set[str]] = {}
        self.deleted: dict[str, Order] = {}  # removed orders, for restore_order
        self.version = 0

    def keys_of(self, name: str) -> list[int]:
        """Microsecond values of one datetime field over all orders."""
        return [keys[name] for keys in self.keys.values()]


def _order_us(order: Order) -> dict[str, int]:
    out = {}
    for name in DATETIME_FILTER_FIELDS:
        value = getattr(order, name)
        out[name] = NULL_US if value is None else to_us(value)
    return out


_MONEY_FIELDS = {
    "billing_subtotal",
    "billing_shipping",
    "billing_tax",
    "billing_total",
    "ship_cost",
    "insured_value",
    "declared_value",
    "cod_value",
    "unit_price",
}
_DATETIME_FIELDS = {"ordered_at", "printed_at", "delivered_at"}
_WEIGHT_FIELDS = {"weight", "unit_weight"}
_LENGTH_FIELDS = {"length", "width", "height"}
_ORDER_FIXED = {"org_pk", "pk", "boxes", "cache", "created_at", "updated_at", "nested_updated_at"}
_CHILD_FIXED = {"pk", "items", "created_at", "updated_at"}
# Field name on the model -> key in the `poison` map that a new value replaces.
_POISON_KEY = {"billing_tax": "billing.tax", "billing_total": "billing.total"}


def coerce_value(name: str, value: Any) -> Any:
    """Convert a JSON value for model field `name` (e.g. from the control endpoint) to its type."""
    if value is None or not isinstance(value, str):
        return value
    try:
        if name in _DATETIME_FIELDS:
            return parse_api_datetime(value)
        if name in _MONEY_FIELDS | _WEIGHT_FIELDS | _LENGTH_FIELDS:
            amount, unit = value.split()
            number = Decimal(amount)
            if name in _MONEY_FIELDS:
                return Money(number, unit)
            if name in _WEIGHT_FIELDS:
                if unit not in GRAMS_PER:
                    raise ValueError(f"unknown weight unit {unit!r}")
                return Weight(number, unit)
            if unit not in METRES_PER:
                raise ValueError(f"unknown length unit {unit!r}")
            return Length(number, unit)
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(f"bad value for {name}: {value!r} ({exc})") from None
    return value


class SandboxStore:
    """Generated ReadyCloud data with O(log n + page) listing and thread-safe mutations."""

    def __init__(
        self, config: SandboxConfig | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        """Generate every org and order from `config` (deterministic in its seed)."""
        self.config = config or SandboxConfig()
        self.clock: Callable[[], datetime] = clock or utc_now
        self.lock = threading.RLock()
        self.generator = DataGenerator(self.config.seed, self.config.poison_rate)
        self._orgs: dict[str, _Org] = {}
        self._selections: OrderedDict[tuple[str, OrderQuery], tuple[int, list[Key]]] = OrderedDict()
        self.data_until = self.config.resolved_data_until()
        self._end_us = to_us(self.data_until)
        self._max_us = self._end_us
        self.mutations = 0
        # Called with (org_pk, order_pk, "PUT" | "DELETE", expanded JSON | None) after every
        # change, under the store lock (the webhook hub queues deliveries from it).
        self.listeners: list[Callable[[str, str, str, bytes | None], None]] = []
        # Millions of small acyclic objects: cyclic GC passes during generation only cost time.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._generate()
        finally:
            if was_enabled:
                gc.enable()

    # ------------------------------------------------------------------ generation
    def _generate(self) -> None:
        cfg = self.config
        gen = self.generator
        rng = gen.rng
        r = rng.random
        end_us = self._end_us
        start_us = end_us - DATA_SPAN_US
        ties = [start_us + 90 * DAY + int(r() * (end_us - start_us - 90 * DAY))]
        for _ in range(max(cfg.tie_values, 1) - 1):
            ties.append(start_us + 90 * DAY + int(r() * (end_us - start_us - 90 * DAY)))
        ties = [t - t % SECOND if n % 2 == 0 else t for n, t in enumerate(ties)]
        per_org, extra = divmod(cfg.orders, cfg.orgs)
        for index in range(cfg.orgs):
            pk = org_pk_for(index, cfg.seed)
            org = _Org(pk, gen.org_json(pk, index))
            self._orgs[pk] = org
            for _ in range(per_org + (1 if index < extra else 0)):
                nested: int | None = None
                if r() < cfg.tie_fraction:
                    nested = ties[int(r() * len(ties))]
                    created = nested - MINUTE - int(r() * 30 * DAY)
                else:
                    # Denser towards the end (a growing shop): with 1,000 orders about 37 fall
                    # in the last day and 200 in the last 30, so recent-days queries and
                    # today's partition have rows.
                    created = end_us - int(r() ** 2 * DATA_SPAN_US)
                if r() < 0.3:
                    created -= created % SECOND
                order = gen.order(pk, created, nested, ceiling_us=end_us)
                org.orders[order.pk] = order
            self._build_indexes(org)
        self._max_us = max(
            [end_us]
            + [max(org.keys_of("nested_updated_at"), default=end_us) for org in self._orgs.values()]
        )

    def _build_indexes(self, org: _Org) -> None:
        org.keys = {pk: _order_us(order) for pk, order in org.orders.items()}
        for name in INDEXED_FIELDS:
            org.index[name] = SortedList((keys[name], pk) for pk, keys in org.keys.items())
        org.by_primary = {}
        for pk, order in org.orders.items():
            org.by_primary.setdefault(order.primary_id, set()).add(pk)

    # ------------------------------------------------------------------ reading
    def org_pks(self) -> list[str]:
        """The pks of the orgs the sandbox token can see, in creation order."""
        return list(self._orgs)

    def org_json(self, org_pk: str) -> dict[str, Any]:
        """The API object of an org (KeyError when unknown)."""
        return self._orgs[org_pk].doc

    def has_org(self, org_pk: str) -> bool:
        """Whether `org_pk` is one of the sandbox's orgs."""
        return org_pk in self._orgs

    def order_count(self, org_pk: str | None = None) -> int:
        """How many orders exist now (in one org, or in all)."""
        with self.lock:
            orgs = [self._orgs[org_pk]] if org_pk else list(self._orgs.values())
            return sum(len(org.orders) for org in orgs)

    def get_order(self, org_pk: str, order_pk: str) -> Order | None:
        """The live model object of an order, or None (do not mutate it directly)."""
        org = self._orgs.get(org_pk)
        return None if org is None else org.orders.get(order_pk)

    def order_pks(self, org_pk: str) -> list[str]:
        """Order pks of an org in the default listing order (created_at, then pk)."""
        with self.lock:
            return [pk for _, pk in self._orgs[org_pk].index[DEFAULT_ORDERING]]

    def orders_json(self, org_pk: str) -> list[dict[str, Any]]:
        """Every current order of an org as the API renders it with expand=boxes,items."""
        with self.lock:
            org = self._orgs[org_pk]
            docs = [
                order_bytes(org.orders[pk], "expanded") for _, pk in org.index[DEFAULT_ORDERING]
            ]
        return [json.loads(doc) for doc in docs]

    def order_bytes(self, org_pk: str, order_pk: str, representation: str) -> bytes | None:
        """Cached JSON bytes of one order ("expanded", "boxes", "stubs", "compact"), or None."""
        with self.lock:
            order = self.get_order(org_pk, order_pk)
            return None if order is None else order_bytes(order, representation)

    def prerender(self, representations: Iterable[str] = ("expanded",)) -> None:
        """Render (and cache) every order now, e.g. before a benchmark's timed part."""
        with self.lock:
            for org in self._orgs.values():
                for order in org.orders.values():
                    for representation in representations:
                        order_bytes(order, representation)

    def box_docs(
        self, org_pk: str, order_pk: str, box_pk: str | None, expand_items: bool
    ) -> list[dict[str, Any]] | None:
        """API objects of one box (or all boxes when `box_pk` is None); None when not found."""
        with self.lock:
            order = self.get_order(org_pk, order_pk)
            if order is None:
                return None
            boxes = [b for b in order.boxes if box_pk is None or b.pk == box_pk]
            if box_pk is not None and not boxes:
                return None
            return [box_json(order, box, expand_items) for box in boxes]

    def item_docs(
        self, org_pk: str, order_pk: str, box_pk: str, item_pk: str | None
    ) -> list[dict[str, Any]] | None:
        """API objects of one item (or all items of the box when `item_pk` is None); None when not found."""
        with self.lock:
            order = self.get_order(org_pk, order_pk)
            box = next((b for b in order.boxes if b.pk == box_pk), None) if order else None
            if order is None or box is None:
                return None
            items = [i for i in box.items if item_pk is None or i.pk == item_pk]
            if item_pk is not None and not items:
                return None
            return [item_json(order, box, item) for item in items]

    def query(
        self, org_pk: str, query: OrderQuery, offset: int, limit: int
    ) -> tuple[int, list[Order]]:
        """(count, page of orders) for a list request; O(log n + page) on the plain paths."""
        with self.lock:
            org = self._orgs[org_pk]
            count, keys = self._page_keys(org, query, offset, limit)
            return count, [org.orders[pk] for _, pk in keys]

    def page_bytes(
        self, org_pk: str, query: OrderQuery, offset: int, limit: int, representation: str
    ) -> tuple[int, list[bytes]]:
        """(count, rendered orders of one page) for a list request."""
        with self.lock:
            org = self._orgs[org_pk]
            count, keys = self._page_keys(org, query, offset, limit)
            orders = org.orders
            return count, [order_bytes(orders[pk], representation) for _, pk in keys]

    def _page_keys(
        self, org: _Org, q: OrderQuery, offset: int, limit: int
    ) -> tuple[int, list[Key]]:
        ranges = {name: (lo, hi) for name, lo, hi in q.ranges}
        own = ranges.pop(q.ordering, None)
        plain = (
            not ranges and q.primary_id is None and q.billing_in is None and q.shipping_in is None
        )
        if plain:
            index = org.index[q.ordering]
            start, stop = 0, len(index)
            if own is not None:
                start, stop = self._positions(index, *own)
            count = max(stop - start, 0)
            if not q.descending:
                return count, list(index[start + offset : min(start + offset + limit, stop)])
            high = stop - offset
            low = max(high - limit, start)
            return count, list(reversed(index[low:high])) if high > low else []
        selection = self._selection(org, q)
        count = len(selection)
        if not q.descending:
            return count, selection[offset : offset + limit]
        high = count - offset
        low = max(high - limit, 0)
        return count, list(reversed(selection[low:high])) if high > low else []

    @staticmethod
    def _positions(index: SortedList, lo: int | None, hi: int | None) -> tuple[int, int]:
        start = index.bisect_left((lo,)) if lo is not None else 0
        stop = index.bisect_left((hi,)) if hi is not None else len(index)
        return start, stop

    def _selection(self, org: _Org, q: OrderQuery) -> list[Key]:
        """Every matching (ordering key, pk), ascending; cached until the org changes."""
        cache_key = (org.pk, q)
        hit = self._selections.get(cache_key)
        if hit is not None and hit[0] == org.version:
            self._selections.move_to_end(cache_key)
            return hit[1]
        ranges = list(q.ranges)
        if q.primary_id is not None:
            candidates: Iterable[str] = sorted(org.by_primary.get(q.primary_id, ()))
        else:
            best: tuple[int, str, int, int] | None = None
            for name, lo, hi in ranges:
                if name in org.index:
                    start, stop = self._positions(org.index[name], lo, hi)
                    if best is None or stop - start < best[0]:
                        best = (stop - start, name, start, stop)
            if best is None:
                candidates = (pk for _, pk in org.index[q.ordering])
            else:
                _, name, start, stop = best
                candidates = (pk for _, pk in org.index[name][start:stop])
        keys_of = org.keys
        orders = org.orders
        found: list[Key] = []
        for pk in candidates:
            keys = keys_of[pk]
            if not all(
                keys[name] != NULL_US
                and (lo is None or keys[name] >= lo)
                and (hi is None or keys[name] < hi)
                for name, lo, hi in ranges
            ):
                continue
            if q.billing_in is not None or q.shipping_in is not None:
                order = orders[pk]
                if q.billing_in is not None and order.billing_status not in q.billing_in:
                    continue
                if q.shipping_in is not None and order.shipping_status not in q.shipping_in:
                    continue
            found.append((keys[q.ordering], pk))
        found.sort()
        self._selections[cache_key] = (org.version, found)
        while len(self._selections) > 64:
            self._selections.popitem(last=False)
        return found

    # ------------------------------------------------------------------ reading
    def orders_in_window(
        self, org_pk: str | None, since: datetime | None, until: datetime | None
    ) -> list[Order]:
        """The current orders (of one org, or all) with since <= nested_updated_at < until."""
        orgs = [self._orgs[org_pk]] if org_pk is not None else list(self._orgs.values())
        lo = None if since is None else to_us(since)
        hi = None if until is None else to_us(until)
        found: list[Order] = []
        for org in orgs:
            index = org.index["nested_updated_at"]
            start, stop = self._positions(index, lo, hi)
            pks = sorted(pk for _, pk in index[start:stop])
            found.extend(org.orders[pk] for pk in pks)
        return found

    # ------------------------------------------------------------------ mutation plumbing
    def now(self) -> datetime:
        """A fresh change time: the clock, but strictly later than every existing timestamp."""
        with self.lock:
            moment = max(to_us(self.clock()), self._max_us + 1)
            self._max_us = moment
            return from_us(moment)

    def _org(self, org_pk: str) -> _Org:
        org = self._orgs.get(org_pk)
        if org is None:
            raise KeyError(f"no org {org_pk!r}")
        return org

    def _order(self, org_pk: str, order_pk: str) -> tuple[_Org, Order]:
        org = self._org(org_pk)
        order = org.orders.get(order_pk)
        if order is None:
            raise KeyError(f"no order {order_pk!r} in org {org_pk!r}")
        return org, order

    @staticmethod
    def _box(order: Order, box_pk: str | None) -> Box:
        if box_pk is None:
            if not order.boxes:
                raise KeyError(f"order {order.pk!r} has no boxes")
            return order.boxes[-1]
        for box in order.boxes:
            if box.pk == box_pk:
                return box
        raise KeyError(f"no box {box_pk!r} in order {order.pk!r}")

    @staticmethod
    def _item(box: Box, item_pk: str) -> Item:
        for item in box.items:
            if item.pk == item_pk:
                return item
        raise KeyError(f"no item {item_pk!r} in box {box.pk!r}")

    def _unindex(self, org: _Org, order: Order) -> None:
        keys = org.keys.pop(order.pk)
        for name in INDEXED_FIELDS:
            org.index[name].remove((keys[name], order.pk))
        bucket = org.by_primary.get(order.primary_id)
        if bucket is not None:
            bucket.discard(order.pk)
            if not bucket:
                del org.by_primary[order.primary_id]

    def _reindex(self, org: _Org, order: Order) -> None:
        keys = _order_us(order)
        org.keys[order.pk] = keys
        for name in INDEXED_FIELDS:
            org.index[name].add((keys[name], order.pk))
        org.by_primary.setdefault(order.primary_id, set()).add(order.pk)
        order.cache.clear()
        org.version += 1
        self.mutations += 1
        if self.listeners:
            body = order_bytes(order, "expanded")
            for listener in self.listeners:
                listener(org.pk, order.pk, "PUT", body)

    def _touch(
        self, org: _Org, order: Order, itself: bool, change: Callable[[datetime], None]
    ) -> None:
        """Apply `change(now)` and bump nested_updated_at (and updated_at when `itself`)."""
        self._unindex(org, order)
        try:
            moment = self.now()
            change(moment)
            order.nested_updated_at = moment
            if itself:
                order.updated_at = moment
        finally:
            self._reindex(org, order)

    @staticmethod
    def _set_fields(target: Any, names: set[str], fixed: set[str], values: dict[str, Any]) -> None:
        for name in values:
            if name not in names or name in fixed:
                raise ValueError(f"field {name!r} cannot be set on {type(target).__name__}")
        for name, value in values.items():
            setattr(target, name, coerce_value(name, value))
            if target.poison:
                target.poison.pop(_POISON_KEY.get(name, name), None)

    # ------------------------------------------------------------------ mutations
    def update_order(self, org_pk: str, order_pk: str, **values: Any) -> None:
        """Change order fields (model names, e.g. message=, billing_status=); bumps both times."""
        with self.lock:
            org, order = self._order(org_pk, order_pk)
            names = {f.name for f in fields(Order)}
            self._touch(
                org, order, True, lambda _: self._set_fields(order, names, _ORDER_FIXED, values)
            )

    def create_order(self, org_pk: str) -> str:
        """Add a new random order created now; returns its pk."""
        with self.lock:
            org = self._org(org_pk)
            moment = to_us(self.now())
            order = self.generator.order(org_pk, moment, moment)
            org.orders[order.pk] = order
            self._reindex(org, order)
            return order.pk

    def delete_order(self, org_pk: str, order_pk: str) -> None:
        """Remove an order: it disappears from lists and its detail answers 404."""
        with self.lock:
            org, order = self._order(org_pk, order_pk)
            self._unindex(org, order)
            del org.orders[order_pk]
            org.deleted[order_pk] = order
            org.version += 1
            self.mutations += 1
            for listener in self.listeners:
                listener(org_pk, order_pk, "DELETE", None)

    def restore_order(self, org_pk: str, order_pk: str) -> None:
        """Bring a deleted order back unchanged (same document, same nested_updated_at)."""
        with self.lock:
            org = self._org(org_pk)
            order = org.deleted.pop(order_pk, None)
            if order is None:
                raise KeyError(f"no deleted order {order_pk!r} in org {org_pk!r}")
            org.orders[order_pk] = order
            self._reindex(org, order)

    def add_box(self, org_pk: str, order_pk: str, items: int = 1) -> str:
        """Add a new box with `items` items; returns its pk."""
        with self.lock:
            org, order = self._order(org_pk, order_pk)
            created: list[str] = []

            def change(moment: datetime) -> None:
                us = to_us(moment)
                box = self.generator.box(org_pk, order_pk, order.currency, _Fixed(us), items)
                created.append(box.pk)
                order.boxes.append(box)

            self._touch(org, order, False, change)
            return created[0]

    def remove_box(self, org_pk: str, order_pk: str, box_pk: str | None = None) -> str:
        """Remove a box (default: the last one); returns its pk."""
        with self.lock:
            org, order = self._order(org_pk, order_pk)
            box = self._box(order, box_pk)
            self._touch(org, order, False, lambda _: order.boxes.remove(box))
            return box.pk

    def update_box(self, org_pk: str, order_pk: str, box_pk: str, **values: Any) -> None:
        """Change box fields (e.g. tracking_number=, weight="2 kg"); bumps nested_updated_at."""
        with self.lock:
            org, order = self._order(org_pk, order_pk)
            box = self._box(order, box_pk)
            names = {f.name for f in fields(Box)}

            def change(moment: datetime) -> None:
                self._set_fields(box, names, _CHILD_FIXED, values)
                box.updated_at = moment

            self._touch(org, order, False, change)

    def add_item(self, org_pk: str, order_pk: str, box_pk: str | None = None) -> str:
        """Add a random item to a box (default: the last); returns its pk."""
        with self.lock:
            org, order = self._order(org_pk, order_pk)
            box = self._box(order, box_pk)
            created: list[str] = []

            def change(moment: datetime) -> None:
                item = self.generator.item(org_pk, order.currency, moment, moment)
                created.append(item.pk)
                box.items.append(item)

            self._touch(org, order, False, change)
            return created[0]

    def remove_item(self, org_pk: str, order_pk: str, box_pk: str, item_pk: str) -> None:
        """Remove one item from a box."""
        with self.lock:
            org, order = self._order(org_pk, order_pk)
            box = self._box(order, box_pk)
            item = self._item(box, item_pk)
            self._touch(org, order, False, lambda _: box.items.remove(item))

    def update_item(
        self, org_pk: str, order_pk: str, box_pk: str, item_pk: str, **values: Any
    ) -> None:
        """Change item fields (e.g. quantity=, unit_price="3.00 USD"); bumps nested_updated_at."""
        with self.lock:
            org, order = self._order(org_pk, order_pk)
            item = self._item(self._box(order, box_pk), item_pk)
            names = {f.name for f in fields(Item)}

            def change(moment: datetime) -> None:
                self._set_fields(item, names, _CHILD_FIXED, values)
                item.updated_at = moment

            self._touch(org, order, False, change)

    def set_item_quantity(
        self, org_pk: str, order_pk: str, box_pk: str, item_pk: str, quantity: int
    ) -> None:
        """Set an item's quantity; bumps nested_updated_at."""
        self.update_item(org_pk, order_pk, box_pk, item_pk, quantity=quantity)

    def change_address(
        self, org_pk: str, order_pk: str, role: str = "ship_to", **values: Any
    ) -> None:
        """Change fields of shipping.ship_to or ship_from (created if null); bumps both times."""
        if role not in ("ship_to", "ship_from"):
            raise ValueError("role must be ship_to or ship_from")
        unknown = set(values) - set(ADDRESS_FIELDS)
        if unknown:
            raise ValueError(f"unknown address fields {sorted(unknown)}")
        with self.lock:
            org, order = self._order(org_pk, order_pk)

            def change(_: datetime) -> None:
                current: Address | None = getattr(order, role)
                fresh = Address(**(current.to_json() if current else dict.fromkeys(ADDRESS_FIELDS)))
                for name, value in values.items():
                    setattr(fresh, name, value)
                setattr(order, role, fresh)

            self._touch(org, order, True, change)

    def mutate_random(self, rng: random.Random) -> str:
        """Apply one random change (update, create, delete, remove box, add item, address...)."""
        with self.lock:
            orgs = [org for org in self._orgs.values() if org.orders]
            if not orgs:
                org = list(self._orgs.values())[rng.randrange(len(self._orgs))]
                return f"create {org.pk}/{self.create_order(org.pk)}"
            org = orgs[rng.randrange(len(orgs))]
            index = org.index[DEFAULT_ORDERING]
            order = org.orders[index[rng.randrange(len(index))][1]]
            kind = rng.choice(
                (
                    "update",
                    "update",
                    "create",
                    "delete",
                    "remove_box",
                    "add_item",
                    "address",
                    "quantity",
                )
            )
            where = f"{org.pk}/{order.pk}"
            if kind == "update":
                self.update_order(org.pk, order.pk, message=f"changed {self.mutations} ✎")
            elif kind == "create":
                return f"create {org.pk}/{self.create_order(org.pk)}"
            elif kind == "delete":
                self.delete_order(org.pk, order.pk)
            elif kind == "remove_box" and order.boxes:
                self.remove_box(org.pk, order.pk, order.boxes[rng.randrange(len(order.boxes))].pk)
            elif kind == "quantity" and order.boxes and order.boxes[0].items:
                item = order.boxes[0].items[0]
                self.set_item_quantity(
                    org.pk, order.pk, order.boxes[0].pk, item.pk, item.quantity + 1
                )
            elif kind == "address":
                self.change_address(org.pk, order.pk, "ship_to", city=f"Moved {self.mutations}")
            elif order.boxes:
                kind = "add_item"
                self.add_item(org.pk, order.pk, order.boxes[0].pk)
            else:
                kind = "add_box"
                self.add_box(org.pk, order.pk)
            return f"{kind} {where}"


class _Fixed:
    """Times for objects created by a mutation: every moment is the change time itself."""

    def __init__(self, us: int) -> None:
        self.us = us

    def after(self, base: int | None = None) -> int:
        """Always the change time."""
        return self.us

    def nested(self) -> int:
        """Always the change time."""
        return self.us
