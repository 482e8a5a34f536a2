"""`bench --quick` runs end to end and writes a complete report: every number present.

Timings are never asserted (the bench exists to measure them); only the report's shape.
"""

import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "CHROMIUM": os.environ.get("CHROMIUM", "/usr/bin/chromium")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench.py"), "--quick",
                           "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), (out / "REPORT.md").read_text(), \
        (out / "chart.svg").read_text()


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def assert_stats(entry, where):
    assert "error" not in entry, f"{where}: {entry}"
    for key in ("median", "min", "max"):
        assert is_number(entry[key]) and entry[key] > 0, f"{where}.{key}: {entry}"
    assert entry["min"] <= entry["median"] <= entry["max"], where


def test_every_contender_has_every_size(quick_bench):
    results, _, _ = quick_bench
    for model, contenders in results["contenders"].items():
        for who in ("upscale", "upscalerjs", "limit"):
            assert set(contenders[who]) == {str(s) for s in results["sizes"]}, (model, who)
            for size, entry in contenders[who].items():
                assert_stats(entry, f"{model}.{who}.{size}")
                assert len(entry["runs"]) == results["repeats"][size]
                assert is_number(entry["longestTaskMs"])
        assert contenders["info"]["workers"] >= 1
        for who in ("upscale", "upscalerjs"):
            seam = contenders["seam"][who]
            assert seam == math.inf or (is_number(seam) and seam > 20), (model, who, seam)
        assert contenders["pageTensorsLeft"] == 0, "the page's TF.js freed every tensor"


def test_every_other_section_is_filled(quick_bench):
    results, _, _ = quick_bench
    for visit in ("first_visit", "second_visit"):
        for run in results["cold_start"][visit]:
            assert is_number(run["ms"]) and run["width"] == 2 * results["cold_start"]["size"]
    for run in results["large"]:
        assert "error" not in run, run
        assert run["width"] == run["height"] == run["size"] * int(run["model"][-1])
        assert run["memory"]["tfHeapBytes"] > 0 and run["memory"]["pyHeapBytes"] > 0
    threads = results["threads"]
    assert threads["isolated"]["isolated"] is True
    assert threads["not_isolated"]["isolated"] is False
    for t in threads.values():
        assert_stats(t["limit"], "threads.limit")
        assert_stats(t["upscale"], "threads.upscale")
    for model, q in results["quality"].items():
        assert set(q["photos"]) == set(results["quality_photos"])
        for key in ("psnr_y", "bicubic_psnr_y"):
            assert 10 < q[key] < 60, (model, key, q[key])
        for key in ("ssim", "bicubic_ssim"):
            assert 0 < q[key] <= 1, (model, key, q[key])
    assert is_number(results["page_main_thread"]["longestTaskMs"])
    assert results["shop"]["products"] > 0 and is_number(results["shop"]["first_visit"]["ms"])


def test_report_and_chart_are_complete(quick_bench):
    results, report, chart = quick_bench
    for heading in ("## Targets", "## Time to upscale", "## The main thread", "## Seam fidelity",
                    "## Cold start", "## Large images", "## WASM threads", "## Quality",
                    "## The demo shop"):
        assert heading in report
    for word in ("nan", "None", "failed", "undefined"):
        assert word not in report, word
    targets = report.split("## Targets")[1].split("##")[0]
    assert targets.count("| yes |") + targets.count("| no |") == 5, targets
    svg = ET.fromstring(chart)
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 3 * len(results["contenders"]), "one line per contender and model"
