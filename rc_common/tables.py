"""Names and primary keys of the warehouse's data tables and views, and rows written per table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# The four tables one API read fills, parent first.
DATA_TABLES: tuple[str, ...] = ("orders", "boxes", "items", "addresses")
# The tables that hang off an order, replaced as a whole when the order changes.
CHILD_TABLES: tuple[str, ...] = ("addresses", "boxes", "items")
# The analyst views the migrations create over the tables.
VIEW_NAMES: tuple[str, ...] = ("order_lines", "daily_order_summary")

# Each data table's primary key.
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "orders": ("org_pk", "order_pk"),
    "boxes": ("org_pk", "order_pk", "box_pk"),
    "items": ("org_pk", "order_pk", "box_pk", "item_pk"),
    "addresses": ("org_pk", "order_pk", "role"),
}

# Child table -> the parent whose key each of its rows must find.
PARENTS: dict[str, str] = {"boxes": "orders", "items": "boxes", "addresses": "orders"}


@dataclass
class TableCounts:
    """Rows inserted, updated and deleted in one table."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def add(self, other: TableCounts) -> None:
        """Accumulate another count into this one."""
        self.inserted += other.inserted
        self.updated += other.updated
        self.deleted += other.deleted

    def minus(self, earlier: TableCounts) -> TableCounts:
        """What was added since `earlier` (a snapshot of the same counter)."""
        return TableCounts(
            self.inserted - earlier.inserted,
            self.updated - earlier.updated,
            self.deleted - earlier.deleted,
        )


def sum_counts(counts: Iterable[TableCounts | None]) -> TableCounts:
    """The sum of several counts (None counts as zero)."""
    total = TableCounts()
    for item in counts:
        if item is not None:
            total.add(item)
    return total
