"""Schema drift: fields in the stored documents that no column maps (issue 11), both databases."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from support import cli_env, run_cli

from rc_sandbox import SandboxConfig, SandboxStore
from warehouse import drift
from warehouse.load import Loader
from warehouse.normalize import normalize_orders

AT = datetime(2026, 11, 1, tzinfo=UTC)


def _docs() -> tuple[str, list[dict[str, Any]]]:
    store = SandboxStore(SandboxConfig(orgs=1, orders=60, seed=3, data_until=AT))
    org = store.org_pks()[0]
    return org, copy.deepcopy(store.orders_json(org))


def _with_new_fields(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ReadyCloud 'adds' fields: one at the top, one on boxes, one in the ship_to address."""
    for doc in docs[:5]:
        doc["gift_message"] = "Happy birthday"
    for doc in docs[:3]:
        doc["boxes"][0]["carrier_code"] = "UPS-G"
        doc["shipping"]["ship_to"]["state_code"] = "NC"
        doc["custom_fields"] = {"never_reported": 1}  # a JSON column's keys are data
    return docs


def _nested(doc: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(doc["nested_updated_at"].replace("Z", "+00:00"))


def test_known_documents_have_only_documented_raw_only_fields() -> None:
    _, docs = _docs()
    example = json.loads(
        (
            Path(__file__).resolve().parents[1]
            / "fixtures/readycloud/orders_list_expand_boxes_items.json"
        ).read_text(encoding="utf-8")
    )["results"]
    known = drift.known_fields()
    for doc in [*docs, *example]:
        assert drift.unmapped_paths(doc, known) <= drift.DOCUMENTED_RAW_ONLY


def test_new_fields_are_reported_with_counts_and_first_last_seen(migrated: Engine) -> None:
    org, docs = _docs()
    docs = _with_new_fields(docs)
    Loader(migrated).load_batch(org, normalize_orders(org, docs, AT))
    fields = {f.path: f for f in drift.schema_drift(migrated)}
    new = {path: f for path, f in fields.items() if not f.documented}
    assert set(new) == {"gift_message", "boxes[].carrier_code", "shipping.ship_to.state_code"}
    assert new["gift_message"].documents == 5
    assert new["boxes[].carrier_code"].documents == 3
    assert new["gift_message"].first_seen == min(_nested(d) for d in docs[:5])
    assert new["gift_message"].last_seen == max(_nested(d) for d in docs[:5])
    assert new["gift_message"].orgs == 1
    assert fields["notes"].documented and fields["notes"].documents == len(docs)
    # new fields come first; a scan of only the latest documents sees the latest ones
    assert [f.documented for f in drift.schema_drift(migrated)][:3] == [False] * 3
    newest = max(docs, key=_nested)
    latest = {f.path for f in drift.schema_drift(migrated, latest=1)}
    assert latest == drift.unmapped_paths(newest, drift.known_fields())


def test_schema_drift_command(target: Any, tmp_path: Path) -> None:
    from warehouse.db import make_engine
    from warehouse.migrate import upgrade

    org, docs = _docs()
    engine = make_engine(target.url, target.schema)
    try:
        upgrade(engine)
        Loader(engine).load_batch(org, normalize_orders(org, _with_new_fields(docs), AT))
    finally:
        engine.dispose()
    env = cli_env(None, target)
    out = run_cli(["schema-drift", "--json"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {r["path"]: r for r in json.loads(out.stdout)}
    assert rows["gift_message"]["documents"] == 5 and not rows["gift_message"]["documented"]
    assert rows["notes"]["documented"]
    text = run_cli(["schema-drift"], env, tmp_path)
    assert text.returncode == 0, text.stderr
    assert "gift_message" in text.stdout and "3 new field(s)" in text.stdout
