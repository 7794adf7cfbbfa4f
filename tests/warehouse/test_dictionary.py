"""The data dictionary covers every column of every table and view; docs are generated from it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from warehouse import dictionary, docs, models, views
from warehouse.db import engine_schema


def test_every_model_column_has_an_entry() -> None:
    missing = [
        f"{table.name}.{column.name}"
        for table in models.metadata.sorted_tables
        for column in table.columns
        if dictionary.describe(table.name, column.name) is None
    ]
    assert missing == []


def test_no_stale_entries() -> None:
    for name, doc in dictionary.TABLES.items():
        table = models.metadata.tables[name]
        assert set(doc.columns) == {c.name for c in table.columns}, name
    assert set(dictionary.VIEWS) == set(views.VIEW_NAMES)


def test_entries_have_description_and_unit() -> None:
    for docs_ in (dictionary.TABLES, dictionary.VIEWS):
        for doc in docs_.values():
            assert doc.description
            for column in doc.columns.values():
                assert column.description and column.unit


def test_view_columns_are_documented(migrated: Engine) -> None:
    inspector = sa.inspect(migrated)
    for view in views.VIEW_NAMES:
        columns = [c["name"] for c in inspector.get_columns(view, schema=engine_schema(migrated))]
        assert columns == list(dictionary.VIEWS[view].columns), view


def test_generated_docs_are_current() -> None:
    assert docs.DOC_PATH.read_text(encoding="utf-8") == docs.render(), (
        "docs/warehouse.md is stale: run `python -m warehouse.docs`"
    )


def _revision(filename: str) -> Any:
    import importlib.util

    from warehouse.migrate import migrations_dir

    path = migrations_dir() / "versions" / filename
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_views_sql_matches_the_migration() -> None:
    # The newest revision that (re)creates order_lines and daily_order_summary freezes them.
    module = _revision("0005_exact_money_country_line_kind.py")
    for dialect in ("sqlite", "postgresql"):
        assert module.view_statements(dialect) == views.create_view_statements(dialect)[:2]
    for dialect, expr in views.UTC_DAY.items():
        assert module.UTC_DAY[dialect] == expr.format(col="o.ordered_at")


def test_warehouse_never_imports_httpx_or_dagster() -> None:
    import ast
    from pathlib import Path

    import warehouse

    for path in Path(warehouse.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"httpx", "dagster"}, (path.name, name)
