"""Warehouse test fixtures: migrated engines on both dialects and the example documents."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from warehouse.db import make_engine
from warehouse.migrate import upgrade

EXAMPLES = Path("/work/shared/readycloud/examples")
_LOCAL_EXAMPLE = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "readycloud"
    / "orders_list_expand_boxes_items.json"
)


def _example_path() -> Path:
    for path in (_LOCAL_EXAMPLE, EXAMPLES / "orders_list_expand_boxes_items.json"):
        if path.exists():
            return path
    pytest.skip("orders_list_expand_boxes_items.json example not found")


@pytest.fixture(scope="session")
def example_page() -> dict[str, Any]:
    """The documented page of GET /orgs/7/orders/?expand=boxes,items."""
    return json.loads(_example_path().read_text(encoding="utf-8"))


@pytest.fixture
def example_docs(example_page: dict[str, Any]) -> list[dict[str, Any]]:
    """A fresh deep copy of the example orders (tests may mutate it)."""
    return copy.deepcopy(example_page["results"])


@pytest.fixture
def engine(target: Any) -> Iterator[Engine]:
    """An unmigrated warehouse engine on the `target` dialect."""
    eng = make_engine(target.url, target.schema)
    yield eng
    eng.dispose()


@pytest.fixture
def migrated(engine: Engine) -> Engine:
    """A migrated warehouse engine on the `target` dialect."""
    upgrade(engine)
    return engine
