"""The benchmark command runs end to end at a tiny size and writes its JSON and Markdown.

No timing is asserted here: the benchmark's figures are only compared within one run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_runs_at_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--orders",
            "120",
            "--orgs",
            "1",
            "--repeat",
            "1",
            "--dialects",
            "sqlite",
            "--concurrency-sweep",
            "",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    assert data["limit"]["orders"] == 120
    full = data["full_sync"]["sqlite"]
    assert full["orders"] == 120 and full["peak_rss_mb"] > 0 and full["requests"] > 0
    assert data["incremental"]["sqlite"]["changed"] >= 1
    assert {t["target"] for t in data["targets"]}
    markdown = (out / "results.md").read_text()
    assert "limit: fetch+parse" in markdown and "rc-sync full sync" in markdown
