"""The rc-sync benchmark: one command, one run, every figure as a ratio to the limit.

    python -m bench                      # N=100,000 orders in 2 orgs, SQLite and PostgreSQL
    python -m bench --quick              # N=10,000, one repetition, short sweep (about 2 min)

Every measured program runs in its own process: the sandbox (which caches ~4 KB of JSON per
order), the limit, and each `rc-sync` command; peak RSS is the measured child's own
`ru_maxrss` (os.wait4), never the harness's or the sandbox's. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# --------------------------------------------------------------------------- processes


@dataclass
class ChildResult:
    """What one measured child process did."""

    returncode: int
    wall_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    cpu_s: float = 0.0  # user + system CPU of the child (imports included)
    peak_tree_pss_mb: float = 0.0  # the child and its worker processes together, sampled


def _tree_pss_kb(pid: int) -> int:
    """Proportional set size of a process and its children (shared pages split, not doubled)."""
    total = 0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    for one in pids:
        try:
            with open(f"/proc/{one}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError):
            pass
    return total


def run_child(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 3600
) -> ChildResult:
    """Run a child to completion; its own peak RSS comes from os.wait4 (Linux: KiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        deadline = started + timeout
        peak_pss_kb = 0
        next_sample = started
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() >= next_sample:  # workers count too (RSS would double
                next_sample += 0.25  # count the pages they share with the caller)
                peak_pss_kb = max(peak_pss_kb, _tree_pss_kb(proc.pid))
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildResult(
            proc.returncode,
            wall,
            usage.ru_maxrss / 1024,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
            usage.ru_utime + usage.ru_stime,
            peak_pss_kb / 1024,
        )


def _checked(result: ChildResult, what: str) -> ChildResult:
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed with exit status {result.returncode}:\n{result.stderr[-3000:]}"
        )
    return result


def _last_json(text: str) -> Any:
    """The JSON document printed last on stdout (rc-sync --json prints one, indented)."""
    start = text.find("{")
    return json.loads(text[start:])


class Sandbox:
    """`python -m bench.sandbox_proc` as a child, steered over its stdin."""

    def __init__(self, orders: int, orgs: int, seed: int, latency_ms: float = 0.0) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.sandbox_proc",
                "--orders",
                str(orders),
                "--orgs",
                str(orgs),
                "--seed",
                str(seed),
                "--latency-ms",
                str(latency_ms),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        hello = self._read()
        self.base_url: str = hello["base_url"]
        self.token: str = hello["token"]
        self.orgs: list[str] = hello["orgs"]
        self.orders: int = hello["orders"]
        self.generate_s: float = hello["generate_s"]

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox process exited")
        return json.loads(line)

    def command(self, text: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------- warehouses


@dataclass
class Target:
    """One fresh warehouse: SQLite file or PostgreSQL schema."""

    dialect: str
    url: str
    schema: str

    @property
    def spec(self) -> str:
        return f"{self.url}|{self.schema}"


class Warehouses:
    """Creates fresh warehouses and removes them all at the end."""

    def __init__(self, workdir: Path, pg_url: str) -> None:
        self.workdir = workdir
        self.pg_url = pg_url
        self.schemas: list[str] = []
        self.tag = uuid.uuid4().hex[:8]
        self.count = 0

    def fresh(self, dialect: str, env: dict[str, str]) -> Target:
        self.count += 1
        if dialect == "sqlite":
            path = self.workdir / f"wh{self.count}.db"
            target = Target("sqlite", f"sqlite:///{path}", "readycloud")
        else:
            schema = f"rc_bench_{self.tag}_{self.count}"
            self.schemas.append(schema)
            target = Target("postgresql", self.pg_url, schema)
        _checked(
            run_child([*rc_sync_cmd(target, None, None), "migrate"], env), f"migrate {dialect}"
        )
        return target

    def drop(self, target: Target) -> None:
        if target.dialect == "sqlite":
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(target.url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        else:
            self._drop_schema(target.schema)

    def _drop_schema(self, schema: str) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(self.pg_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()

    def close(self) -> None:
        for schema in self.schemas:
            try:
                self._drop_schema(schema)
            except Exception as exc:  # cleanup must not hide results
                print(f"could not drop schema {schema}: {exc}", file=sys.stderr)


def pg_available(url: str) -> str | None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def rc_sync_cmd(target: Target, sandbox: Sandbox | None, concurrency: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "rc_sync.cli", "--warehouse-url", target.url]
    if target.dialect == "postgresql":
        cmd += ["--schema", target.schema]
    if sandbox is not None:
        cmd += ["--base-url", sandbox.base_url]
    if concurrency is not None:
        cmd += ["--concurrency", str(concurrency)]
    return cmd


def child_env(sandbox: Sandbox | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("READYCLOUD_", "WAREHOUSE_", "RC_SYNC_"))
    }
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if sandbox is not None:
        env["READYCLOUD_API_TOKEN"] = sandbox.token
    # The benchmark measures the client, not the budget: the sandbox is not throttled.
    env["READYCLOUD_RATE_LIMIT"] = "off"
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------- measurements


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


@dataclass
class SyncSample:
    """One `rc-sync sync` run."""

    wall_s: float  # the engine's own elapsed time (RunReport.elapsed_s)
    process_s: float  # the whole process, imports included
    peak_rss_mb: float
    requests: int  # counted by rc-sync's client (the run report; without the org listing)
    orders: int
    rows: int
    server_requests: int = 0  # counted by the sandbox: every API request of the process
    cpu_s: float = 0.0  # the child's CPU time (user + system), imports included
    peak_tree_pss_mb: float = 0.0  # the process and its normalization workers together

    @classmethod
    def from_child(cls, child: ChildResult) -> SyncSample:
        report = _last_json(child.stdout)
        rows = 0
        for org in report["orgs"]:
            for counts in org.get("tables", {}).values():
                rows += int(counts.get("inserted", 0)) + int(counts.get("updated", 0))
        return cls(
            wall_s=float(report["elapsed_s"]),
            process_s=child.wall_s,
            peak_rss_mb=child.peak_rss_mb,
            requests=int(report["requests"]),
            orders=sum(int(o["orders_read"]) for o in report["orgs"]),
            rows=rows,
            cpu_s=child.cpu_s,
            peak_tree_pss_mb=child.peak_tree_pss_mb,
        )


def run_sync(
    target: Target,
    sandbox: Sandbox,
    concurrency: int | None,
    *,
    full_refresh: bool = False,
    extra_env: dict[str, str] | None = None,
) -> SyncSample:
    cmd = [*rc_sync_cmd(target, sandbox, concurrency), "sync", "--json"]
    if full_refresh:
        cmd.append("--full-refresh")
    before = sandbox.command("stats")["requests"]
    child = _checked(
        run_child(cmd, child_env(sandbox, extra_env)), f"rc-sync sync ({target.dialect})"
    )
    sample = SyncSample.from_child(child)
    sample.server_requests = sandbox.command("stats")["requests"] - before
    return sample


def summarize(samples: list[SyncSample]) -> dict[str, Any]:
    wall = median([s.wall_s for s in samples])
    orders = samples[0].orders if samples else 0
    rows = samples[0].rows if samples else 0
    return {
        "wall_s": wall,
        "process_s": median([s.process_s for s in samples]),
        "orders": orders,
        "rows": rows,
        "orders_per_s": orders / wall if wall else None,
        "rows_per_s": rows / wall if wall else None,
        "requests": int(median([s.server_requests for s in samples])),
        "client_requests": int(median([s.requests for s in samples])),
        "peak_rss_mb": median([s.peak_rss_mb for s in samples]),
        "cpu_s": median([s.cpu_s for s in samples]),
        "peak_tree_pss_mb": median([s.peak_tree_pss_mb for s in samples]),
        "samples": [s.__dict__ for s in samples],
    }


def run_rebuild(target: Target) -> SyncSample:
    """`rc-sync rebuild --all` on a synced warehouse (no sandbox: it must not need the API)."""
    cmd = [*rc_sync_cmd(target, None, None), "--base-url", "http://127.0.0.1:9", "rebuild"]
    cmd += ["--all", "--json"]
    child = _checked(run_child(cmd, child_env(None)), f"rc-sync rebuild ({target.dialect})")
    return SyncSample.from_child(child)


def log(message: str) -> None:
    print(
        f"[bench {datetime.now(UTC).strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True
    )


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(DEFAULT_PG_URL)
        with engine.connect() as conn:
            info["postgresql"] = conn.execute(sa.text("show server_version")).scalar()
        engine.dispose()
    except Exception:
        info["postgresql"] = None
    import sqlite3

    info["sqlite"] = sqlite3.sqlite_version
    return info


# --------------------------------------------------------------------------- the run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="rc-sync benchmark (see bench/README.md)"
    )
    parser.add_argument(
        "--orders", type=int, default=None, help="N, across all orgs (default 100000)"
    )
    parser.add_argument("--orgs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency of the main runs")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (median; default 3)")
    parser.add_argument("--dialects", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("RC_SYNC_TEST_PG_URL", DEFAULT_PG_URL))
    parser.add_argument(
        "--concurrency", type=int, default=None, help="rc-sync's (default: its own)"
    )
    parser.add_argument("--concurrency-sweep", default=None, help="e.g. 1,2,4,8 ('' = skip)")
    parser.add_argument("--sweep-latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--sweep-repeat",
        type=int,
        default=1,
        help="repetitions of each sweep point (latency-bound, quiet)",
    )
    parser.add_argument("--change-fraction", type=float, default=0.01)
    parser.add_argument("--scale-divisor", type=int, default=10, help="second size = N / this")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="N=10000, 1 repetition, sweep 1,8")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument(
        "--skip-request-budget",
        action="store_true",
        help="leave out the request-budget rows (their own syncs at min(N, 30,000) orders)",
    )
    args = parser.parse_args(argv)
    if args.orders is None:
        args.orders = 10_000 if args.quick else 100_000
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.concurrency_sweep is None:
        args.concurrency_sweep = "1,8" if args.quick else "1,2,4,8"
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    dialects = [d.strip() for d in args.dialects.split(",") if d.strip()]
    if "postgresql" in dialects:
        problem = pg_available(args.pg_url)
        if problem:
            log(f"PostgreSQL not reachable ({problem}); skipping it")
            dialects.remove("postgresql")
    sweep = [int(c) for c in args.concurrency_sweep.split(",") if c.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="rc-bench-"))
    warehouses = Warehouses(workdir, args.pg_url)
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {
            "orders": args.orders,
            "orgs": args.orgs,
            "seed": args.seed,
            "latency_ms": args.latency_ms,
            "repeat": args.repeat,
            "dialects": dialects,
            "concurrency": args.concurrency,
            "concurrency_sweep": sweep,
            "sweep_latency_ms": args.sweep_latency_ms,
            "change_fraction": args.change_fraction,
            "page_size": args.page_size,
        },
    }
    sandbox: Sandbox | None = None
    try:
        log(f"starting the sandbox with {args.orders} orders in {args.orgs} orgs")
        sandbox = Sandbox(args.orders, args.orgs, args.seed, args.latency_ms)
        results["sandbox_generate_s"] = sandbox.generate_s
        env = child_env(sandbox)

        # 1. the limit -------------------------------------------------------------------
        log("limit: fetch+parse (bare httpx loop) and bulk load")
        load_targets = [warehouses.fresh(d, env) for _ in range(args.repeat) for d in dialects]
        limit_cmd = [
            sys.executable,
            "-m",
            "bench.limit",
            "--base-url",
            sandbox.base_url,
            "--token",
            sandbox.token,
            "--orgs",
            ",".join(sandbox.orgs),
            "--page-size",
            str(args.page_size),
            "--repeat",
            str(args.repeat),
        ]
        for target in load_targets:
            limit_cmd += ["--load", target.spec]
        limit = _last_json(_checked(run_child(limit_cmd, env), "limit").stdout)
        for target in load_targets:
            warehouses.drop(target)
        fetch_s = median([f["elapsed_s"] for f in limit["fetch"]])
        results["limit"] = {
            "fetch_parse_s": fetch_s,
            "fetch_parse_cpu_s": median([f.get("cpu_s", 0.0) for f in limit["fetch"]]),
            "load_cpu_s": {
                d: median([r.get("cpu_s", 0.0) for r in runs]) for d, runs in limit["load"].items()
            },
            "pages": limit["fetch"][0]["pages"],
            "orders": limit["fetch"][0]["orders"],
            "bytes": limit["fetch"][0]["bytes"],
            "load_s": {
                d: median([r["elapsed_s"] for r in runs]) for d, runs in limit["load"].items()
            },
            "rows": {d: runs[0]["rows"] for d, runs in limit["load"].items()},
            "samples": limit,
        }
        results["limit"]["total_s"] = {
            d: fetch_s + s for d, s in results["limit"]["load_s"].items()
        }
        log(f"limit: fetch+parse {fetch_s:.2f}s, load {results['limit']['load_s']}")

        # 2. full sync, N ------------------------------------------------------------------
        full: dict[str, Any] = {}
        kept: dict[str, list[Target]] = {}
        for dialect in dialects:
            samples = []
            kept[dialect] = []
            for attempt in range(args.repeat):
                target = warehouses.fresh(dialect, env)
                log(f"full sync {dialect} #{attempt + 1}")
                samples.append(run_sync(target, sandbox, args.concurrency))
                log(f"  {samples[-1].wall_s:.2f}s, {samples[-1].peak_rss_mb:.0f} MB")
                kept[dialect].append(target)
            full[dialect] = summarize(samples)
        results["full_sync"] = full

        # 2b. rebuild of everything that was just synced, from the stored documents ----------
        rebuild: dict[str, Any] = {}
        for dialect in dialects:
            samples = []
            for attempt, target in enumerate(kept[dialect]):
                log(f"rebuild --all {dialect} #{attempt + 1}")
                samples.append(run_rebuild(target))
                log(f"  {samples[-1].wall_s:.2f}s, {samples[-1].peak_rss_mb:.0f} MB")
            rebuild[dialect] = summarize(samples)
        results["rebuild"] = rebuild

        # 3. incremental after a share of the orders changed -------------------------------
        changed = sandbox.command(f"touch {args.change_fraction}")["changed"]
        incremental: dict[str, Any] = {}
        for dialect in dialects:
            samples = []
            for attempt, target in enumerate(kept[dialect]):
                log(f"incremental {dialect} #{attempt + 1} ({changed} changed)")
                samples.append(run_sync(target, sandbox, args.concurrency))
                warehouses.drop(target)
            incremental[dialect] = summarize(samples)
            incremental[dialect]["changed"] = changed
            bound = -(-changed // args.page_size) + 5
            incremental[dialect]["request_bound"] = bound
        results["incremental"] = incremental
        sandbox.close()
        sandbox = None

        # 4. full sync at N / divisor -------------------------------------------------------
        small_n = max(args.orders // args.scale_divisor, args.orgs)
        log(f"starting the sandbox with {small_n} orders (scaling and the sweep)")
        sandbox = Sandbox(small_n, args.orgs, args.seed, args.latency_ms)
        env = child_env(sandbox)
        scaling: dict[str, Any] = {}
        for dialect in dialects:
            samples = []
            for attempt in range(args.repeat):
                target = warehouses.fresh(dialect, env)
                log(f"full sync {dialect} at N/{args.scale_divisor} #{attempt + 1}")
                samples.append(run_sync(target, sandbox, args.concurrency))
                warehouses.drop(target)
            scaling[dialect] = summarize(samples)
        results["small_full_sync"] = {"orders": small_n, **scaling}

        # 5. concurrency sweep with latency -------------------------------------------------
        if sweep:
            sandbox.command(f"latency {args.sweep_latency_ms}")
            sweep_results: dict[str, Any] = {"latency_ms": args.sweep_latency_ms, "orders": small_n}
            end_to_end: dict[str, Any] = {}
            dialect = dialects[0]
            for c in sweep:
                samples = []
                for _ in range(args.sweep_repeat):
                    target = warehouses.fresh(dialect, env)
                    log(f"sweep: full sync {dialect}, concurrency {c}, {args.sweep_latency_ms} ms")
                    samples.append(run_sync(target, sandbox, c))
                    warehouses.drop(target)
                end_to_end[str(c)] = summarize(samples)
            sweep_results["sync"] = {"dialect": dialect, "points": end_to_end}
            sandbox.close()
            sandbox = None
            # extraction alone at N (latency-bound: shows what concurrency buys)
            log(
                f"starting the sandbox with {args.orders} orders, {args.sweep_latency_ms} ms latency"
            )
            sandbox = Sandbox(args.orders, args.orgs, args.seed, args.sweep_latency_ms)
            env = child_env(sandbox)
            fetch_points: dict[str, Any] = {}
            for c in sweep:
                walls = []
                last: dict[str, Any] = {}
                for _ in range(args.sweep_repeat):
                    log(f"sweep: extraction only, concurrency {c}")
                    child = _checked(
                        run_child(
                            [
                                sys.executable,
                                "-m",
                                "bench.fetch",
                                "--base-url",
                                sandbox.base_url,
                                "--token",
                                sandbox.token,
                                "--orgs",
                                ",".join(sandbox.orgs),
                                "--concurrency",
                                str(c),
                                "--page-size",
                                str(args.page_size),
                            ],
                            env,
                        ),
                        "bench.fetch",
                    )
                    last = _last_json(child.stdout)
                    walls.append(last["elapsed_s"])
                wall = median(walls)
                fetch_points[str(c)] = {
                    "wall_s": wall,
                    "orders": last["orders"],
                    "requests": last["requests"],
                    "orders_per_s": last["orders"] / wall,
                    "samples": walls,
                }
            sweep_results["fetch"] = {"orders": args.orders, "points": fetch_points}
            results["sweep"] = sweep_results
    finally:
        if sandbox is not None:
            sandbox.close()
        warehouses.close()
        shutil.rmtree(workdir, ignore_errors=True)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["targets"] = evaluate(results)
    return results


# --------------------------------------------------------------------------- reporting


def evaluate(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured figure and whether it holds."""
    out: list[dict[str, Any]] = []
    limit = r["limit"]
    for dialect, figures in r.get("rebuild", {}).items():
        ratio = figures["wall_s"] / limit["load_s"][dialect]
        out.append(
            {
                "target": f"rebuild {dialect} within 1.5x of the bulk-load limit (wall)",
                "measured": f"{ratio:.2f}x",
                "holds": ratio <= 1.5,
            }
        )
    for dialect, figures in r["full_sync"].items():
        ratio = figures["wall_s"] / limit["total_s"][dialect]
        out.append(
            {
                "target": f"full sync {dialect} within 1.5x of the limit (wall)",
                "measured": f"{ratio:.2f}x",
                "holds": ratio <= 1.5,
            }
        )
        limit_cpu = limit.get("fetch_parse_cpu_s", 0.0) + limit.get("load_cpu_s", {}).get(
            dialect, 0.0
        )
        if limit_cpu and figures.get("cpu_s"):
            cpu_ratio = figures["cpu_s"] / limit_cpu
            out.append(
                {
                    "target": f"full sync {dialect} within 2x of the limit's client CPU",
                    "measured": f"{cpu_ratio:.2f}x ({figures['cpu_s']:.1f} s vs {limit_cpu:.1f} s)",
                    "holds": cpu_ratio <= 2.0,
                }
            )
        small = r["small_full_sync"].get(dialect)
        if small:
            growth = figures["peak_rss_mb"] / small["peak_rss_mb"]
            out.append(
                {
                    "target": f"peak RSS {dialect}: N <= 1.3x N/10",
                    "measured": f"{growth:.2f}x ({figures['peak_rss_mb']:.0f} MB vs {small['peak_rss_mb']:.0f} MB)",
                    "holds": growth <= 1.3,
                }
            )
        if r["config"]["orders"] >= 100_000:
            # With normalization workers, memory is the whole process tree's (PSS: pages the
            # worker shares with its caller counted once); the larger of the two figures.
            memory = max(figures["peak_rss_mb"], figures.get("peak_tree_pss_mb", 0.0))
            out.append(
                {
                    "target": f"peak memory {dialect} under 500 MB at N",
                    "measured": f"{memory:.0f} MB (RSS {figures['peak_rss_mb']:.0f} MB, "
                    f"process tree PSS {figures.get('peak_tree_pss_mb', 0.0):.0f} MB)",
                    "holds": memory < 500,
                }
            )
        inc = r["incremental"][dialect]
        out.append(
            {
                "target": f"incremental {dialect}: requests <= changed/page + 5",
                "measured": f"{inc['requests']} <= {inc['request_bound']}",
                "holds": inc["requests"] <= inc["request_bound"],
            }
        )
        share = inc["wall_s"] / figures["wall_s"]
        out.append(
            {
                "target": f"incremental {dialect}: wall < 5% of full sync",
                "measured": f"{share * 100:.1f}%",
                "holds": share < 0.05,
            }
        )
    sweep = r.get("sweep")
    if sweep:
        for kind in ("fetch", "sync"):
            points = sweep[kind]["points"]
            if "1" in points and "8" in points:
                speedup = points["1"]["wall_s"] / points["8"]["wall_s"]
                out.append(
                    {
                        "target": f"{'extraction' if kind == 'fetch' else 'end-to-end sync'} at "
                        f"{sweep['latency_ms']:g} ms: concurrency 8 >= 6x concurrency 1",
                        "measured": f"{speedup:.1f}x",
                        "holds": speedup >= 6.0,
                    }
                )
    return out


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return ""
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _full_sync_row(
    label: str, dialect: str, f: dict[str, Any], ratio: str, cpu_ratio: str = ""
) -> list[str]:
    """One table row for a measured full sync (or rebuild)."""
    return [
        label,
        dialect,
        _fmt(f["wall_s"]),
        _fmt(f["orders_per_s"]),
        _fmt(f["rows_per_s"]),
        _fmt(f["requests"]),
        _fmt(f["peak_rss_mb"], 0)
        + (f" / {_fmt(f['peak_tree_pss_mb'], 0)}" if f.get("peak_tree_pss_mb") else ""),
        _fmt(f.get("cpu_s")),
        ratio,
        cpu_ratio,
    ]


def _limit_cpu(limit: dict[str, Any], dialect: str) -> float:
    """The limit's client CPU: fetch+parse plus the bulk load's, inside their phases."""
    return float(limit.get("fetch_parse_cpu_s", 0.0)) + float(
        limit.get("load_cpu_s", {}).get(dialect, 0.0)
    )


def _ratio(value: float | None, base: float | None, suffix: str = "") -> str:
    if not value or not base:
        return ""
    return f"{value / base:.2f}{suffix}"


def table_rows(r: dict[str, Any]) -> list[list[str]]:
    """measurement | dialect | wall s | orders/s | rows/s | requests | peak RSS / tree PSS MB | CPU s |
    x limit (wall) | x limit (CPU)"""
    rows: list[list[str]] = []
    limit = r["limit"]
    n = limit["orders"]
    rows.append(
        [
            "limit: fetch+parse (bare httpx loop)",
            "-",
            _fmt(limit["fetch_parse_s"]),
            _fmt(n / limit["fetch_parse_s"]),
            "",
            _fmt(limit["pages"]),
            "",
            _fmt(limit.get("fetch_parse_cpu_s")),
            "",
            "",
        ]
    )
    for dialect, load_s in limit["load_s"].items():
        rows.append(
            [
                "limit: bulk load (" + ("executemany" if dialect == "sqlite" else "COPY") + ")",
                dialect,
                _fmt(load_s),
                _fmt(n / load_s),
                _fmt(limit["rows"][dialect] / load_s),
                "",
                "",
                _fmt(limit.get("load_cpu_s", {}).get(dialect)),
                "",
                "",
            ]
        )
        total = limit["total_s"][dialect]
        rows.append(
            [
                "**limit: fetch+parse + bulk load**",
                dialect,
                _fmt(total),
                _fmt(n / total),
                _fmt(limit["rows"][dialect] / total),
                "",
                "",
                _fmt(_limit_cpu(limit, dialect)),
                "1.00",
                "1.00",
            ]
        )
    for dialect, f in r["full_sync"].items():
        ratio = _fmt(f["wall_s"] / limit["total_s"][dialect])
        cpu_ratio = _ratio(f.get("cpu_s"), _limit_cpu(limit, dialect))
        label = f"rc-sync full sync, N={f['orders']:,}"
        rows.append(_full_sync_row(label, dialect, f, ratio, cpu_ratio))
    for dialect, f in r.get("rebuild", {}).items():
        ratio = _fmt(f["wall_s"] / limit["load_s"][dialect]) + " of bulk load"
        cpu_ratio = _ratio(f.get("cpu_s"), limit.get("load_cpu_s", {}).get(dialect), " of load")
        label = f"rc-sync rebuild --all, N={f['orders']:,} (0 requests)"
        rows.append(_full_sync_row(label, dialect, f, ratio, cpu_ratio))
    divisor = r["config"].get("scale_divisor", 10)
    for dialect, f in r.get("small_full_sync", {}).items():
        if isinstance(f, dict):
            label = f"rc-sync full sync, N/{divisor}={f['orders']:,}"
            big = r["full_sync"].get(dialect, {}).get("peak_rss_mb")
            growth = _ratio(big, f.get("peak_rss_mb"), " RSS N vs N/10")
            rows.append(_full_sync_row(label, dialect, f, growth))
    for dialect, inc in r["incremental"].items():
        full = r["full_sync"][dialect]
        rows.append(
            [
                f"incremental, {inc['changed']:,} changed ({r['config']['change_fraction'] * 100:g}%)",
                dialect,
                _fmt(inc["wall_s"]),
                "",
                "",
                f"{inc['requests']} (bound {inc['request_bound']})",
                _fmt(inc["peak_rss_mb"], 0),
                _fmt(inc.get("cpu_s")),
                f"{inc['wall_s'] / full['wall_s'] * 100:.1f}% of full",
                "",
            ]
        )
    sweep = r.get("sweep")
    if sweep:
        fetch = sweep["fetch"]["points"]
        base = fetch.get("1", {}).get("wall_s")
        for c, p in fetch.items():
            rows.append(
                [
                    f"extraction only, {sweep['latency_ms']:g} ms latency, concurrency {c}, N={sweep['fetch']['orders']:,}",
                    "-",
                    _fmt(p["wall_s"]),
                    _fmt(p["orders_per_s"]),
                    "",
                    _fmt(p["requests"]),
                    "",
                    "",
                    f"{base / p['wall_s']:.1f}x c=1" if base else "",
                    "",
                ]
            )
        sync = sweep["sync"]["points"]
        base = sync.get("1", {}).get("wall_s")
        for c, p in sync.items():
            rows.append(
                [
                    f"full sync, {sweep['latency_ms']:g} ms latency, concurrency {c}, N={p['orders']:,}",
                    sweep["sync"]["dialect"],
                    _fmt(p["wall_s"]),
                    _fmt(p["orders_per_s"]),
                    _fmt(p["rows_per_s"]),
                    _fmt(p["requests"]),
                    _fmt(p["peak_rss_mb"], 0),
                    _fmt(p.get("cpu_s")),
                    f"{base / p['wall_s']:.1f}x c=1" if base else "",
                    "",
                ]
            )
    return rows


HEADER = [
    "measurement",
    "dialect",
    "wall s",
    "orders/s",
    "rows/s",
    "requests",
    "peak RSS / tree PSS MB",
    "CPU s",
    "x limit (wall)",
    "x limit (CPU)",
]


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    c = r["config"]
    lines = [
        f"rc-sync benchmark, {r['started_at']} — N={c['orders']:,} orders in {c['orgs']} orgs, "
        f"latency {c['latency_ms']:g} ms, median of {c['repeat']} "
        f"(sweep: {c['sweep_latency_ms']:g} ms latency). Machine: {m.get('cpus')} CPUs "
        f"({m.get('cpu', '?')}), {m.get('memory_gb', '?')} GB, Python {m['python']}, "
        f"SQLite {m['sqlite']}, PostgreSQL {m.get('postgresql') or '-'}.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(HEADER) - 2)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(r)]
    if r.get("request_budget_table"):
        lines += ["", "Requests (the API budget: 30 GETs/min per App):", ""]
        lines += r["request_budget_table"]
    lines += ["", "| target | measured | holds |", "|---|---|---|"]
    lines += [
        f"| {t['target']} | {t['measured']} | {'yes' if t['holds'] else '**no**'} |"
        for t in r["targets"]
    ]
    return "\n".join(lines) + "\n"


def plain_table(r: dict[str, Any]) -> str:
    rows = [HEADER, *table_rows(r)]
    widths = [max(len(row[i].replace("**", "")) for row in rows) for i in range(len(HEADER))]
    out = []
    for index, row in enumerate(rows):
        cells = [
            cell.replace("**", "").ljust(widths[i]) if i < 2 else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.append("  ".join(cells))
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("")
    out += r.get("request_budget_table", [])
    out.append("")
    for t in r["targets"]:
        out.append(f"[{'ok' if t['holds'] else 'NO'}] {t['target']}: {t['measured']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    results = run(args)
    from bench import requests as request_bench

    if not args.skip_request_budget:
        log("requests per 1,000 orders (request budget) ...")
        budget_orders = min(args.orders, request_bench.BEFORE_ORDERS)
        results["request_budget"] = request_bench.measure_all(budget_orders, seed=7)
        results["request_budget_table"] = request_bench.table(results["request_budget"])
    results["config"]["scale_divisor"] = args.scale_divisor
    results["bench_wall_s"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown(results))
    print(plain_table(results))
    print(f"\nwrote {out / 'results.json'} and {out / 'results.md'} ({results['bench_wall_s']}s)")


if __name__ == "__main__":
    main()
