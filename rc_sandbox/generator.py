"""Deterministic, hostile-but-plausible ReadyCloud data from a seed (typed model, not JSON)."""

# The look-alike characters (fullwidth, fraktur, curly quotes) are deliberate test data.
# ruff: noqa: RUF001

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from rc_common.paths import API_PREFIX
from rc_sandbox.model import (
    MONEY_EXPONENT,
    Address,
    Box,
    Item,
    Length,
    Money,
    Order,
    Weight,
    box_url,
    from_us,
)

SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# Data span the two years (731 days) up to the sandbox's `data_until` (default: now);
# mutations happen "now", always later. The end the sandbox used before it had one:
LEGACY_DATA_UNTIL = datetime(2025, 1, 1, tzinfo=UTC)
DATA_SPAN_US = 731 * DAY

_B64 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"

SQL_INJECTION = "'; DROP TABLE orders; --"

FIRST_NAMES = (
    "Dana", "Marcus", "José", "Zoë", "Aoife", "王", "محمد", "Nguyễn", "Ólafur", "Siobhán",
    "Li", "Priya", "Jean-Luc", "Émilie", "Søren", "Иван", "", "Ana María", "🙂", "D'Arcy",
)  # fmt: skip
LAST_NAMES = (
    "Whitfield", "Oyelaran", "O'Brien", "García Márquez", "小明", "الفارسي", "Müller",
    "Łukasiewicz", "Smith", "Johnson", "van der Berg", "Ng", "", "Сидоров", "Nakamura",
    'Smith "Smitty"', "Pérez-Ortiz", "Øster", "Brown", "Robert'); DROP TABLE Students;--",
)  # fmt: skip
COMPANIES = (
    "", "", "", "Tidewater Outfitters", "Brightline Dental", "🚀 Rocket Supplies",
    "株式会社テスト", "شركة الأمل للتجارة", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 Ltd", '"Quoted" & Co', "Acme, Inc.",
    SQL_INJECTION, "Ça Va Café", "Back\\slash LLC", "100% Pure <b>Bold</b>",
)  # fmt: skip
CITIES = (
    ("Asheville", "NC", "28801", "United States"),
    ("Columbus", "OH", "43219", "United States"),
    ("Wilmington", "NC", "28401", "USA"),
    ("Toronto", "ON", "M5V 2T6", "Canada"),
    ("München", "BY", "80331", "Deutschland"),
    ("Zürich", "ZH", "8001", "Switzerland"),
    ("東京", "東京都", "100-0001", "日本"),
    ("London", "", "SW1A 1AA", "United Kingdom"),
    ("São Paulo", "SP", "01000-000", "Brasil"),
    ("القاهرة", None, "11511", "مصر"),
    ("Kraków", "", "30-001", "PL"),
    ("Montréal", "QC", "H2Y 1C6", "CA"),
    ("Reykjavík", None, "101", "Ísland"),
    ("Sydney", "NSW", "2000", "Australia"),
)
STREETS = (
    "418 Larkspur Ave", "2200 Commerce Dr", "90 Harbor Industrial Pkwy", "1 Infinite Loop",
    "Hauptstraße 5", "Rue de l'Église 12", "千代田1-1", "12 O'Connell St", "شارع التحرير 7",
    "742 Evergreen Terrace", "PO Box 0", SQL_INJECTION, "Line one\nLine two", "  padded  ",
)  # fmt: skip
ADDRESS_2 = ("", "", "", "Unit 3", "Suite 140", "Apt. 4B", None, "c/o 🎁 Gifts", "3F")
MESSAGES = (
    "", "", "", "", None, "Thanks for shopping with Tidewater Outfitters!",
    "Merci beaucoup ! À bientôt.", "ご注文ありがとうございます。", "شكرا لطلبك",
    "Happy birthday! 🎂🎉 𝄞", SQL_INJECTION, 'He said "ship it" and left', "Line 1\nLine 2\tTabbed",
    "x" * 220, "Ünïcödé ✓ — “smart quotes” ‘single’", "<script>alert(1)</script>", "NULL", "null",
)  # fmt: skip
TERMS = ("Prepaid", "Prepaid", "COD", "Net 30", "", None)
BILLING_STATUS = ("paid", "paid", "paid", "pending", "pending", "refunded")
SHIPPING_STATUS = (None, None, None, "pending", "shipped", "delivered")
SHIP_VIA = ("UPS", "USPS", "FedEx", "DHL", "Stamps.com", "")
SHIP_TYPE = ("Ground", "Priority Mail", "2nd Day Air", "Express", "Standard", "")
WAREHOUSES = ("Main", "Main", "East", "倉庫 B", "", None)
SOURCES = ("Storefront Sync", "Manual entry", "Amazon", "Shopify", "eBay", "", None)
TAGS = ("Paid", "Completed", "Closed", "Tagged", "Rush", "Gift 🎁", "VIP", "重要", "Back-order")
CURRENCIES = ("USD", "USD", "USD", "USD", "EUR", "EUR", "GBP", "CAD", "JPY", "AUD", "CHF")
# Rough value of one unit of the currency in US cents, for plausible prices.
RATE = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "JPY": 0.0067, "AUD": 0.66, "CHF": 1.12}
CUSTOM_FIELDS: tuple[dict[str, Any], ...] = (
    {}, {}, {}, {"gift_wrap": "no"}, {"gift_wrap": "yes", "priority": 2},
    {"note": SQL_INJECTION}, {"nested": {"a": [1, 2, 3], "b": None}}, {"flag": True, "none": None},
    {"emoji 🔑": "値 ✓"}, {"price_override": "12.50 USD", "weight": 1.5},
)  # fmt: skip
PACKAGE_TYPES = ("Medium Box", "Small Box", "Large Box", "Envelope", "Tube", "", None)
CONFIRMATION = (
    "none",
    "no_signature_required",
    "signature_required",
    "adult_signature_required",
    "indirect_signature_required",
)
KINDS = ("goods", "goods", "goods", "goods", "goods", "discount", "tax", "adjustment", None)
WEIGHT_UNITS = ("g", "g", "g", "kg", "lb", "lbs", "oz")
WEIGHT_DECIMALS = {"g": 3, "kg": 3, "lb": 2, "lbs": 3, "oz": 1}
WEIGHT_SCALE = {"g": 1.0, "kg": 0.001, "lb": 1 / 453.59237, "lbs": 1 / 453.59237, "oz": 1 / 28.3495}
LENGTH_UNITS = ("m", "m", "cm", "mm", "in", "ft")
LENGTH_DECIMALS = {"m": 4, "cm": 2, "mm": 1, "in": 2, "ft": 3}
LENGTH_SCALE = {"m": 1.0, "cm": 100.0, "mm": 1000.0, "in": 39.3701, "ft": 3.28084}
PRODUCT_WORDS = (
    "Merino trail socks", "Daypack 22L", "Nitrile gloves", "Headlamp", "Water bottle 1L",
    "Wool beanie", "Carabiner", "保温ボトル", "Café mug ☕", "Rain shell", "Trail mix 500 g",
    "Tent stake set", "Chaussettes « laine »", "كوب حراري", "Dry bag 10L", "Socks 'Classic'",
)  # fmt: skip
COLORS = ("slate", "red", "blue", "black", "olive", "sand", "赤", "")
COUNTRY_CODES = ("US", "US", "CN", "VN", "DE", "MY", "MX", "JP", "", None)
TRACKING_LOCATIONS = ("Charlotte, NC, US", "Memphis, TN, US", "Köln, DE", "深圳, CN", "")

# Hostile raw values per poisonable (table, json key); all must fail any sane typed parser.
POISON_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("orders", "ordered_at"): ("not a date", "2024-02-30T10:00:00Z", "31/12/2024 25:61"),
    ("orders", "billing.tax"): ("N/A", "12..5 USD", "abc USD"),
    ("orders", "billing.total"): ("N/A", "1.2.3 EUR", "--5 USD"),
    ("boxes", "weight"): ("3 bananas", "heavy", "--5 g"),
    ("boxes", "length"): ("12 furlongs", "long", "1..2 m"),
    ("boxes", "ship_cost"): ("free", "7,95 USD?", "$$ USD"),
    ("boxes", "delivered_at"): ("yesterday", "2024-13-45T25:61:00Z", "soon™"),
    ("items", "unit_weight"): ("--5 g", "weightless", "1 ton-ish"),
    ("items", "quantity"): ("two", "1.5.2", "🙂"),
}


def encode_pk(index: int, width: int, alphabet: str, mult: int, add: int) -> str:
    """An opaque, unique pk for `index`: a bijective scramble written in `alphabet`."""
    base = len(alphabet)
    n = (index * mult + add) % (base**width)
    out = []
    for _ in range(width):
        n, digit = divmod(n, base)
        out.append(alphabet[digit])
    return "".join(reversed(out))


def _scrambled_hex(index: int, width: int, mult: int, add: int) -> str:
    """An opaque hex pk for `index`: a bijective scramble modulo 16**width (`mult` is odd)."""
    return f"{(index * mult + add) % (1 << (4 * width)):0{width}x}"


class PkMint:
    """Unique opaque pks for orders, boxes, items and tracking events (continues after mutations)."""

    def __init__(self) -> None:
        """Start every counter at zero."""
        self.counters = {"order": 0, "box": 0, "item": 0, "tracking": 0}

    def next(self, kind: str) -> str:
        """The next pk of a kind."""
        index = self.counters[kind]
        self.counters[kind] = index + 1
        if kind == "order":
            return _scrambled_hex(index, 7, 0x5DEECE66D, 12_345)
        if kind == "box":
            return _scrambled_hex(index, 8, 0x2545F491, 7)
        if kind == "item":
            return _scrambled_hex(index, 9, 0x9E3779B97F4A7C15, 11)
        return str(30_000 + index)


def org_pk_for(index: int, seed: int) -> str:
    """The opaque pk of the org number `index` (URL-safe, includes - and _ sometimes)."""
    return encode_pk(index + 7 * seed, 6, _B64, 1_664_525 * 2 + 1, 1_013_904_223)


class Product(NamedTuple):
    """A catalog entry: what items of one product share."""

    part: str
    code: str
    description: str
    color: str
    usd_cents: int
    weight: Weight | None
    pick_location: str
    origin: str | None
    ups: str | None
    ean: str | None
    isbn: str | None
    image_link: str | None
    link: str | None
    customs: dict[str, Any]


class Moments(Protocol):
    """Source of timestamps for the objects of one order."""

    def after(self, base: int | None = None) -> int:
        """A moment (microseconds) after `base`, or after the order's creation."""
        ...


class DataGenerator:
    """Makes orgs, orders, boxes, items and addresses from one seeded random stream."""

    def __init__(self, seed: int, poison_rate: float = 0.0) -> None:
        """A generator whose output depends only on `seed` and the sequence of calls."""
        self.rng = random.Random(seed)
        self.seed = seed
        self.poison_rate = poison_rate
        self.mint = PkMint()
        self._catalogs: dict[str, list[Product]] = {}
        self._money: dict[tuple[float, str], Money] = {}
        self._origins: dict[str, list[Address]] = {}
        self._packaging: dict[str, list[dict[str, Any]]] = {}
        self._build_pools()

    # ------------------------------------------------------------------ org-level pools
    def org_json(self, org_pk: str, index: int) -> dict[str, Any]:
        """The API object of an organization."""
        names = ("Tidewater Outfitters", "Brightline Dental", "Ünïcode Trading Ø", "東京ストア")
        return {
            "url": f"{API_PREFIX}/orgs/{org_pk}/",
            "name": f"{names[index % len(names)]} #{index + 1}",
            "fees_paid_by": "org",
            "app_seat_licenses": [],
            "payment_plan": {
                "url": f"{API_PREFIX}/payment-plans/3/",
                "name": "Business",
                "price": "99.00 USD",
                "billing_period": "month",
                "limit": 0,
                "users": 10,
                "integrations": 5,
                "storage": -1,
                "extras": {},
            },
            "user_slots": 10,
            "subscriptions": {"integration": 5, "storage": -1, "user": 10},
            "avatar": None,
            "website": "https://example.com/",
            "billing_status": "paid",
            "deleted_at": None,
            "trial_expires_at": None,
        }

    def _catalog(self, org_pk: str) -> list[Product]:
        catalog = self._catalogs.get(org_pk)
        if catalog is None:
            rng = random.Random(f"{self.seed}:{org_pk}:catalog")
            r = rng.random
            catalog = []
            for n in range(300):
                word = PRODUCT_WORDS[n % len(PRODUCT_WORDS)]
                color = rng.choice(COLORS)
                part = f"{org_pk[:2].upper()}-{n:04d}-{color[:3].upper() or 'X'}"
                code = str(100_000 + n)
                catalog.append(
                    Product(
                        part=part,
                        code=code,
                        description=f"{word}, {color}" if color else word,
                        color=color,
                        usd_cents=rng.choice((99, 499, 1400, 3000, 5999, 12000, 0, 250)),
                        weight=None
                        if r() < 0.05
                        else self._weight(rng, rng.choice((12.5, 96.0, 250.0, 600.0, 1055.0))),
                        pick_location=f"{rng.choice('ABC')}-{rng.randrange(20):02d}-{rng.randrange(6)}",
                        origin=rng.choice(COUNTRY_CODES),
                        ups=None if r() < 0.6 else f"0{rng.randrange(10**11):011d}",
                        ean=None if r() < 0.7 else f"{rng.randrange(10**13):013d}",
                        isbn=None if r() < 0.95 else "978-3-16-148410-0",
                        image_link=None if r() < 0.7 else f"https://cdn.example.com/img/{part}.jpg",
                        link=None if r() < 0.9 else f"https://example.com/p/{code}",
                        customs={
                            "joint_production": "N" if r() < 0.5 else True,
                            "commodity_code": "4202.92",
                            "net_cost_code": "NO",
                            "net_cost_begin_date": "2024-01-01T00:00:00Z",
                            "net_cost_end_date": "2024-12-31T00:00:00+00:00",
                            "export_type_code": "D",
                            "preference_criteria_code": "B",
                            "producer_info_code": "No",
                            "scheduleb_commodity_code": "4202920000",
                        },
                    )
                )
            self._catalogs[org_pk] = catalog
        return catalog

    def _origin(self, org_pk: str) -> list[Address]:
        origins = self._origins.get(org_pk)
        if origins is None:
            rng = random.Random(f"{self.seed}:{org_pk}:origin")
            origins = []
            for _ in range(3):
                city, region, post, country = rng.choice(CITIES)
                origins.append(
                    Address(
                        first_name="",
                        last_name="",
                        company=rng.choice(COMPANIES[3:]),
                        address_1=rng.choice(STREETS),
                        address_2="",
                        city=city,
                        region=region,
                        post_code=post,
                        country=country,
                        phone=f"{rng.randrange(10**9, 10**10)}",
                        email=f"ops{rng.randrange(100)}@example.com",
                        residential=False,
                        validated=True,
                    )
                )
            self._origins[org_pk] = origins
        return origins

    def _packagings(self, org_pk: str) -> list[dict[str, Any]]:
        found = self._packaging.get(org_pk)
        if found is None:
            found = [
                {
                    "url": f"{API_PREFIX}/orgs/{org_pk}/packaging/{n + 11}/",
                    "name": name,
                    "description": desc,
                    "package_type": "Cardboard",
                    "length": length,
                    "width": width,
                    "height": height,
                    "weight": weight,
                    "created_at": "2023-11-14T10:00:00Z",
                    "updated_at": "2023-11-14T10:00:00+00:00",
                }
                for n, (name, desc, length, width, height, weight) in enumerate(
                    (
                        ("12x10x6", "Standard medium carton", "0.3048 m", "0.2540 m", "0.1524 m", "210.0000 g"),
                        ("Mailer", "Padded mailer ✉", "0.3500 m", "0.2500 m", "0.0200 m", "40.0000 g"),
                    )
                )
            ]  # fmt: skip
            self._packaging[org_pk] = found
        return found

    # ------------------------------------------------------------------ values
    def money(self, usd_cents: float, currency: str) -> Money:
        """A Money of roughly `usd_cents` US cents in `currency`, at that currency's precision."""
        key = (usd_cents, currency)
        found = self._money.get(key)
        if found is None:
            exponent = MONEY_EXPONENT[currency]
            minor = round(usd_cents / RATE[currency] / 100 * 10**exponent)
            found = self._money[key] = Money(Decimal(minor).scaleb(-exponent), currency)
        return found

    @staticmethod
    def _weight(rng: random.Random, grams: float) -> Weight:
        unit = rng.choice(WEIGHT_UNITS)
        places = WEIGHT_DECIMALS[unit]
        minor = round(grams * WEIGHT_SCALE[unit] * 10**places)
        return Weight(Decimal(minor).scaleb(-places), unit)

    @staticmethod
    def _length(rng: random.Random, metres: float) -> Length:
        unit = rng.choice(LENGTH_UNITS)
        places = LENGTH_DECIMALS[unit]
        minor = round(metres * LENGTH_SCALE[unit] * 10**places)
        return Length(Decimal(minor).scaleb(-places), unit)

    def weight(self, grams: float) -> Weight:
        """A Weight near `grams`, in a random unit."""
        return self._weight(self.rng, grams)

    def length(self, metres: float) -> Length:
        """A Length near `metres`, in a random unit."""
        return self._length(self.rng, metres)

    def _build_pools(self) -> None:
        """Shared immutable values (sizes, weights, addresses) drawn from their own stream."""
        rng = random.Random(f"{self.seed}:pools")
        r = rng.random
        self._sizes = [
            (
                self._length(rng, 0.1 + r() * 0.5),
                self._length(rng, 0.1 + r() * 0.4),
                self._length(rng, 0.02 + r() * 0.3),
            )
            for _ in range(97)
        ]
        self._weights = [self._weight(rng, 50 + r() * 8000) for _ in range(257)]
        saved, self.rng = self.rng, rng
        try:
            self._addresses = [self.address() for _ in range(1009)]
        finally:
            self.rng = saved

    def address(self) -> Address:
        """A random recipient address."""
        rng = self.rng
        r = rng.random
        city, region, post, country = CITIES[int(r() * len(CITIES))]
        first = FIRST_NAMES[int(r() * len(FIRST_NAMES))]
        last = LAST_NAMES[int(r() * len(LAST_NAMES))]
        return Address(
            first_name=first,
            last_name=last,
            company=COMPANIES[int(r() * len(COMPANIES))],
            address_1=STREETS[int(r() * len(STREETS))],
            address_2=ADDRESS_2[int(r() * len(ADDRESS_2))],
            city=city,
            region=region,
            post_code=post,
            country=country,
            phone="" if r() < 0.1 else f"+1 {int(r() * 9e9) + 10**9}",
            email="" if r() < 0.2 else f"user{int(r() * 1e6)}@example.net",
            residential=r() < 0.7,
            validated=None if r() < 0.05 else r() < 0.5,
        )

    # ------------------------------------------------------------------ objects
    def item(self, org_pk: str, currency: str, created: datetime, updated: datetime) -> Item:
        """A random item line."""
        r = self.rng.random
        catalog = self._catalog(org_pk)
        product = catalog[int(r() * len(catalog))]
        kind = KINDS[int(r() * len(KINDS))]
        price = product.usd_cents
        if kind in ("discount", "adjustment"):
            price = -price // 10
        roll = r()
        return Item(
            pk=self.mint.next("item"),
            kind=kind,
            quantity=1 + int(r() * r() * 6),
            part_number=product.part,
            code=product.code,
            description=product.description if roll < 0.97 else "",
            unit_price=self.money(price, currency),
            unit_weight=product.weight,
            pick_location=product.pick_location,
            origin_country_code=product.origin,
            ups=product.ups,
            ean=product.ean,
            isbn=product.isbn,
            custom_fields={"color": product.color} if roll < 0.2 else {},
            created_at=created,
            updated_at=updated,
            image_link=product.image_link,
            link=product.link,
            customs=product.customs if roll > 0.9 else None,
        )

    def box(
        self, org_pk: str, order_pk: str, currency: str, times: Moments, items: int | None = None
    ) -> Box:
        """A random box with 1-5 items (or `items`)."""
        r = self.rng.random
        created = times.after()
        box_pk = self.mint.next("box")
        count = items if items is not None else 1 + int(r() * r() * 5)
        created_at = from_us(created)
        lines = []
        for _ in range(count):
            if r() < 0.8:  # created in the same transaction as the box, never touched since
                lines.append(self.item(org_pk, currency, created_at, created_at))
            else:
                item_created = times.after(created)
                item_updated = from_us(times.after(item_created))
                lines.append(self.item(org_pk, currency, from_us(item_created), item_updated))
        delivered = times.after(created) if r() < 0.3 else None
        tracking: list[dict[str, Any]] = []
        if delivered is not None:
            url = box_url(org_pk, order_pk, box_pk)
            stamp = f"{from_us(delivered).isoformat()[:19]}Z"
            for status in ("in_transit", "delivered"):
                tracking.append(
                    {
                        "url": f"{url}tracking/{self.mint.next('tracking')}/",
                        "status": status,
                        "description": "Delivered, front porch" if status == "delivered" else "Departed facility",
                        "location": TRACKING_LOCATIONS[int(r() * len(TRACKING_LOCATIONS))],
                        "created_at": stamp,
                    }
                )  # fmt: skip
        roll = r()
        sizes = self._sizes[int(r() * len(self._sizes))] if roll < 0.8 else (None, None, None)
        declared = sum(
            (line.unit_price.amount * line.quantity for line in lines if line.unit_price),
            Decimal(0),
        )
        zero = self.money(0, currency)
        packagings = self._packagings(org_pk)
        return Box(
            pk=box_pk,
            package_type=PACKAGE_TYPES[int(r() * len(PACKAGE_TYPES))],
            description="12x10x6 corrugated" if roll < 0.5 else "",
            length=sizes[0],
            width=sizes[1],
            height=sizes[2],
            weight=None if roll > 0.9 else self._weights[int(r() * len(self._weights))],
            ship_cost=self.money(int(r() * 60) * 50, currency),
            insured_value=zero if roll < 0.7 else self.money(int(r() * 40) * 500, currency),
            declared_value=Money(max(declared, Decimal(0)), currency) if roll < 0.9 else zero,
            cod_value=zero,
            shipper_release=roll < 0.1,
            insurance_type="" if roll < 0.8 else "carrier",
            tracking_number=None if r() < 0.3 else f"1Z{int(r() * 16**12):012X}",
            confirmation_type=CONFIRMATION[int(r() * len(CONFIRMATION))],
            cod="" if roll < 0.95 else "cash",
            saturday_delivery=roll > 0.95,
            delivered_at=None if delivered is None else from_us(delivered),
            created_at=created_at,
            updated_at=created_at if r() < 0.5 else from_us(times.after(created)),
            custom_fields={} if roll < 0.8 else {"pallet": f"P{int(roll * 100)}", "fragile": True},
            items=lines,
            packaging=packagings[int(r() * len(packagings))] if r() < 0.4 else None,
            tracking=tracking,
        )

    def order(
        self,
        org_pk: str,
        created_us: int,
        nested_us: int | None = None,
        ceiling_us: int | None = None,
    ) -> Order:
        """A random order created at `created_us`; its times lie before `nested_us` if given,
        and never after `ceiling_us` (the end of the data) if given."""
        rng = self.rng
        r = rng.random
        times = _Times(r, created_us, nested_us, ceiling_us)
        order_pk = self.mint.next("order")
        currency = CURRENCIES[int(r() * len(CURRENCIES))]
        n_boxes = 1 + int(r() * r() * 3)
        boxes = [self.box(org_pk, order_pk, currency, times) for _ in range(n_boxes)]
        updated = times.after() if r() < 0.4 else created_us
        number = 20_000 + self.mint.counters["order"]
        subtotal = sum(
            (
                item.unit_price.amount * item.quantity
                for box in boxes
                for item in box.items
                if item.unit_price
            ),
            Decimal(0),
        )
        shipping = sum((box.ship_cost.amount for box in boxes if box.ship_cost), Decimal(0))
        exponent = MONEY_EXPONENT[currency]
        tax = (subtotal * Decimal("0.08")).quantize(Decimal(1).scaleb(-exponent))
        if tax < 0:
            tax = Decimal(0).scaleb(-exponent)
        prefix = ("WEB", "AMZ", "EBAY", "POS", "B2B")[int(r() * 5)]
        ordered = created_us - int(r() * 2 * DAY) if r() < 0.9 else None
        printed = times.after() if r() < 0.4 else None
        order = Order(
            org_pk=org_pk,
            pk=order_pk,
            primary_id=f"{prefix}-{number}" if r() < 0.97 else f"ＷＥＢ-{number} ✓",
            unique_id=f"rc-{org_pk}-{order_pk}",
            order_number=number if r() < 0.9 else None,
            customer_number="" if r() < 0.2 else f"C-{int(r() * 10000):04d}",
            po_number="" if r() < 0.6 else (None if r() < 0.1 else f"PO-{int(r() * 9999)}"),
            message=MESSAGES[int(r() * len(MESSAGES))],
            terms=TERMS[int(r() * len(TERMS))],
            ordered_at=None if ordered is None else from_us(_whole_second(ordered, r)),
            printed_at=None if printed is None else from_us(printed),
            created_at=from_us(created_us),
            updated_at=from_us(updated),
            nested_updated_at=from_us(times.nested()),
            currency=currency,
            billing_status=BILLING_STATUS[int(r() * len(BILLING_STATUS))],
            billing_subtotal=Money(subtotal, currency),
            billing_shipping=Money(shipping, currency),
            billing_tax=Money(tax, currency),
            billing_total=Money(subtotal + shipping + tax, currency),
            shipping_status=SHIPPING_STATUS[int(r() * len(SHIPPING_STATUS))],
            ship_via=SHIP_VIA[int(r() * len(SHIP_VIA))],
            ship_type=SHIP_TYPE[int(r() * len(SHIP_TYPE))],
            warehouse=WAREHOUSES[int(r() * len(WAREHOUSES))],
            ship_to=self._addresses[int(r() * len(self._addresses))] if r() < 0.97 else None,
            ship_from=None if r() < 0.15 else self._origin(org_pk)[int(r() * 3)],
            source_name=SOURCES[int(r() * len(SOURCES))],
            tags=sorted({TAGS[int(r() * len(TAGS))] for _ in range(int(r() * r() * 4))}),
            custom_fields=CUSTOM_FIELDS[int(r() * len(CUSTOM_FIELDS))],
            boxes=boxes,
        )
        if self.poison_rate and r() < self.poison_rate:
            self.poison(order)
        return order

    def poison(self, order: Order) -> None:
        """Replace one typed value of the order (or of one of its boxes or items) by junk."""
        r = self.rng.random
        targets = [k for k in POISON_VALUES if k[0] == "orders"]
        if order.boxes:
            targets += [k for k in POISON_VALUES if k[0] == "boxes"]
            if any(box.items for box in order.boxes):
                targets += [k for k in POISON_VALUES if k[0] == "items"]
        table, key = targets[int(r() * len(targets))]
        values = POISON_VALUES[(table, key)]
        raw = values[int(r() * len(values))]
        if table == "orders":
            order.poison = {key: raw}
        elif table == "boxes":
            box = order.boxes[int(r() * len(order.boxes))]
            box.poison = {key: raw}
        else:
            box = next(b for b in order.boxes if b.items)
            box.items[int(r() * len(box.items))].poison = {key: raw}


def _whole_second(us: int, r: Any) -> int:
    """`us` rounded up to a whole second 30% of the time (so some datetimes have no fraction)."""
    return us + (-us % SECOND) if r() < 0.3 else us


class _Times:
    """Timestamps inside one order's life: after its creation, never past its nested_updated_at."""

    def __init__(
        self, r: Any, created_us: int, nested_us: int | None, ceiling_us: int | None = None
    ) -> None:
        self.r = r
        self.created = created_us
        self.fixed_nested = nested_us
        self.span = (nested_us - created_us) if nested_us is not None else 3 * DAY
        if nested_us is None and ceiling_us is not None:
            self.span = max(min(self.span, ceiling_us - created_us), 0)
        self.latest = created_us

    def after(self, base: int | None = None) -> int:
        """A moment after `base` (default: the order's creation), within the order's span."""
        start = self.created if base is None else base
        limit = self.created + self.span
        room = max(limit - start, 0)
        x = self.r()
        moment = start + int(x * x * room)
        if moment % 10 < 3:
            rounded = moment + (-moment % SECOND)
            if rounded <= limit:
                moment = rounded
        if moment > self.latest:
            self.latest = moment
        return moment

    def nested(self) -> int:
        """The order's nested_updated_at: the fixed tie value, or the latest moment used."""
        if self.fixed_nested is not None:
            return self.fixed_nested
        return self.latest
