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
    assert not (out / "routing.json").exists(), "only a full run writes the routing table"
    return json.loads((out / "results.json").read_text()), (out / "REPORT.md").read_text(), \
        (out / "chart.svg").read_text(), (out / "quality.svg").read_text(), \
        (out / "real.svg").read_text()


SVG = "{http://www.w3.org/2000/svg}"
DEFAULT_MODEL = "span-x2"


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def assert_stats(entry, where):
    assert "error" not in entry, f"{where}: {entry}"
    for key in ("median", "min", "max"):
        assert is_number(entry[key]) and entry[key] > 0, f"{where}.{key}: {entry}"
    assert entry["min"] <= entry["median"] <= entry["max"], where


def test_every_contender_has_every_size(quick_bench):
    results, *_ = quick_bench
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
    results, *_ = quick_bench
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
    results, report, chart, *_ = quick_bench
    for heading in ("## Targets", "## Time to upscale", "## The main thread", "## Seam fidelity",
                    "## Cold start", "## Large images", "## WASM threads", "## Quality",
                    "## Real inputs", "## The demo shop"):
        assert heading in report
    for word in ("nan", "None", "failed", "undefined"):
        assert word not in report, word
    targets = report.split("## Targets")[1].split("##")[0]
    assert targets.count("| yes |") + targets.count("| no |") == 7, targets
    svg = ET.fromstring(chart)
    lines = svg.findall(f"{SVG}polyline")
    assert len(lines) == 3 * len(results["contenders"]), "one line per contender and model"


def test_the_default_model_is_timed_against_upscalerjs_slim(quick_bench):
    results, report, *_ = quick_bench
    assert results["default_model"] == DEFAULT_MODEL
    assert {"esrgan-slim-x2", DEFAULT_MODEL} <= set(results["contenders"])
    assert f"### {DEFAULT_MODEL}" in report
    targets = report.split("## Targets")[1].split("##")[0]
    (row,) = [line for line in targets.splitlines()
              if line.startswith(f"| default model ({DEFAULT_MODEL}) at 512 px on WASM / "
                                 "UpscalerJS esrgan-slim-x2 at 512 px")]
    name, measured, holds = (cell.strip() for cell in row.strip("|").split("|"))
    largest = max(results["sizes"])
    assert measured.endswith(f"(measured at {largest} px: a quick run)"), row
    assert float(measured.split()[0]) > 0, row
    assert holds in ("yes", "no"), row


def test_every_quality_row_has_a_speed_and_the_chart_a_point(quick_bench):
    results, report, _, quality_svg, _ = quick_bench
    speeds = results["ms_per_megapixel"]
    assert is_number(speeds.get(DEFAULT_MODEL)) and speeds[DEFAULT_MODEL] > 0, speeds
    assert set(speeds) == set(results["quality"]), "every model in the quality table is timed"
    for model, ms in speeds.items():
        assert is_number(ms) and ms > 0, (model, ms)
    section = report.split("## Quality")[1].split("\n## ")[0]
    assert "](quality.svg)" in section
    rows = {line.split("|")[1].strip(): line for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| model")}
    for model in (DEFAULT_MODEL, "span-x4"):
        assert model in rows, f"no {model} row in the quality table"
        cells = [cell.strip() for cell in rows[model].strip("|").split("|")]
        assert cells[1] == "sharpest" and cells[3].endswith(" MB"), cells
        assert float(cells[5].split()[0]) > 0, f"{model} gains over bicubic: {cells}"
        assert float(cells[8].replace(",", "")) == pytest.approx(speeds[model], abs=1), cells
    svg = ET.fromstring(quality_svg)
    points = [g.get("data-model") for g in svg.iter(f"{SVG}g")
              if g.find(f"{SVG}circle") is not None]
    assert sorted(points) == sorted(speeds), "one point per timed model"
    for g in svg.iter(f"{SVG}g"):
        assert g.find(f"{SVG}text").text == g.get("data-model"), "each point labelled"


def test_every_backend_has_its_speed_and_names_its_device(quick_bench):
    results, report, *_ = quick_bench
    for model, runs in results["backends"].items():
        assert set(runs) == {"wasm", "cpu", "webgl", "webgpu"}, model
        for name, run in runs.items():
            assert_stats(run, f"backends.{model}.{name}")
            assert is_number(run["msPerMegapixel"]) and run["device"], (model, name)
    assert DEFAULT_MODEL in results["backends"], "a quick run times the default model"
    # This machine has no GPU: SwiftShader renders both GPU backends, and the report says so.
    assert results["backends"][DEFAULT_MODEL]["webgpu"]["software"] is True
    assert "## Backends" in report and "(software)" in report


REAL_METRICS = ("psnr_y", "ssim", "ssimulacra2", "butteraugli", "butteraugli_3norm")


def test_real_inputs_have_every_metric_and_autos_pick(quick_bench):
    results, report, *_, real_svg = quick_bench
    real = results["real"]
    assert [c["name"] for c in real["conditions"]] == ["clean", "jpeg-q90", "jpeg-q50"]
    assert real["models"] == {"2": [DEFAULT_MODEL, "waifu2x-photo-x2-denoise1", "auto"]}
    for name, by_model in real["outcomes"]["2"].items():
        assert set(by_model) == set(real["models"]["2"]), name
        for photo, bicubic in real["bicubic"]["2"][name].items():
            assert 10 < bicubic["psnr_y"] < 60 and 0 < bicubic["ssim"] <= 1, (name, photo)
            assert bicubic["ssimulacra2"] <= 100 and bicubic["butteraugli"] > 0, (name, photo)
        for model, entry in by_model.items():
            assert set(entry["photos"]) == set(real["photos"]), (name, model)
            for row in [entry["mean"], *entry["photos"].values()]:
                assert all(is_number(row[m]) for m in REAL_METRICS), (name, model, row)
        auto = by_model["auto"]
        assert set(auto["picked"]) == set(real["photos"]) and all(auto["reasons"].values())
        for pick in auto["picked"].values():  # a model, at the scale asked for
            assert json.loads((ROOT / "models" / f"{pick}.json").read_text())["scale"] == 2
    clean = real["outcomes"]["2"]["clean"]
    assert clean["auto"]["reasons"] == {p: "PNG: no compression noise" for p in real["photos"]}
    assert all(r.startswith("JPEG, quality ≈ ")
               for r in real["outcomes"]["2"]["jpeg-q50"]["auto"]["reasons"].values())
    assert clean[DEFAULT_MODEL]["mean"]["psnr_y"] > 0, "SPAN gains on a clean file"
    assert real["auto_mismatches"] == [], "the engine ran what the table routes"
    # The table these outcomes give parses; a quick run's auto ran with the build's table.
    assert real["routing"]["scales"]["2"]["jpeg"][-1]["atLeast"] == 0
    for by_who in real["bytes"].values():
        for who, by_metric in by_who.items():
            for metric, entry in by_metric.items():
                assert is_number(entry["mean_ratio"]) and entry["mean_ratio"] > 0, (who, metric)
    section = report.split("## Real inputs")[1].split("\n## ")[0]
    for heading in ("### x2: what `auto` ran", "### The routing table", "### x2: every model",
                    "### Bytes at equal quality", "### What this means"):
        assert heading in section, heading
    assert "](real.svg)" in section
    svg = ET.fromstring(real_svg)
    drawn = {(line.get("data-model"), line.get("data-metric"))
             for line in svg.iter(f"{SVG}polyline")}
    assert drawn == {(m, k) for m in real["models"]["2"] for k in ("psnr_y", "ssimulacra2")}
