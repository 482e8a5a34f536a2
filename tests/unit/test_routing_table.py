"""The shipped routing table is the bench's: recomputed from bench/results.json's stored outcomes
with routing.build_table, it is bench/routing.json; and every model it names is served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from upscale.routing import Condition, Outcome, RoutingTable, build_table

ROOT = Path(__file__).resolve().parents[2]
REFERENCES = {2: "span-x2", 4: "span-x4"}  # bench/realinputs.py's


@pytest.fixture(scope="module")
def shipped() -> RoutingTable:
    return RoutingTable.from_json(json.loads((ROOT / "bench" / "routing.json").read_text()))


def test_the_table_is_what_the_benchs_outcomes_give(shipped):
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    real = results["real"]
    conditions = [Condition(c["name"], c["kind"], c["quality"], c["routable"],
                            c.get("blurry", False)) for c in real["conditions"]]
    # Per photo in a fixed order (PSNR-Y: the rule's worst photo), 'auto' is what it routes.
    outcomes = {int(scale): {name: {model: Outcome(
        tuple(entry["photos"][p]["psnr_y"] for p in sorted(entry["photos"])),
        entry["mean"]["ssimulacra2"]) for model, entry in by_model.items() if model != "auto"}
        for name, by_model in by_condition.items()}
        for scale, by_condition in real["outcomes"].items()}
    built = build_table(outcomes, conditions, results["ms_per_megapixel"],
                        {scale: REFERENCES[scale] for scale in outcomes}, shipped.measured)
    assert built == shipped
    assert not shipped.measured.startswith("provisional"), shipped.measured
    assert real["auto_table"] == shipped.measured, "auto's column ran with this table"
    assert real["auto_mismatches"] == []


def test_every_model_in_the_table_is_a_manifest_at_its_scale(shipped):
    manifests = {m["id"]: m for m in (json.loads(path.read_text())
                                      for path in (ROOT / "models").glob("*.json"))}
    for scale, routes in shipped.scales.items():
        for model in routes.models():
            assert model in manifests, model
            assert manifests[model]["scale"] == scale, (model, scale)
