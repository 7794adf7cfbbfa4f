"""warehouse: tables, migrations runner, parsing/normalization, loading, sync state and locks.

Never imports httpx or dagster. Entry points:

* `warehouse.db.make_engine(url, schema)`
* `warehouse.migrate.upgrade(engine)` / `check_current(engine)`
* `warehouse.normalize.normalize_orders(org_pk, docs, synced_at)`
* `warehouse.load.Loader(engine).load_batch(org_pk, batch, checkpoint=..., live=...)`
* `warehouse.state.StateStore(engine)`
* `warehouse.locks.org_run_lock(engine, org_pk, timeout_s=...)`
"""
