"""SPAN on WebGL's half floats, in CPython: its converted graph run in numpy with every tensor
stored as float16 (tests/graph_numpy.py), as on a GPU without float32 render targets. The same
PSNRs came out of Chromium's WebGL (SwiftShader, WEBGL_FORCE_F16_TEXTURES) within 0.5 dB on
photos and black and white patterns, before the x 255 fold and after it.

On photos SPAN never came near 65504 (its largest tensor was the input times 255, 152 at most;
now that the factor is in the first convolution's weights, 41-122). What half floats cost it is
rounding, which its six attention blocks multiply on hard edges: as converted, span-x4 keeps 41
dB of float32 on black and white bars (the others 53 dB and more, photos 60). Half-float WebGL
runs the attention's sigmoid(z) - 0.5 as tanh(z / 2) / 2 (web/tfbridge.js, whose rewrite runs
here in node): every SPAN keeps 45 dB on the bars then. On checkerboards, discs and diagonal
edges SPAN's own float32 output is noise (tests/corpus.py `bars`), so those are not measured.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.corpus import bars
from tests.graph_numpy import GraphRun, run_graph
from tests.ncnn_reference import NcnnNet
from upscale.ncnn import convert

SPAN_IDS = ["span-x2", "span-x4", "span-x2-wide", "span-x4-wide"]
SIDE = 32
HALF_MAX = 65504.0
# float32 against float32 in another order: a twentieth of a grey level (1/255) at most
FLOAT32_BOUND = 2e-4
HALF_DB = 45.0  # half floats against float32, as tests/e2e/test_backends.py asks of WebGL
# span-x4 on hard edges as converted: sigmoid(z) rounded near 0.5 before the attention takes
# 0.5 away, six times over (41.4 dB), where WebGL holds float32 and this never runs.
HALF_DB_EDGES = {"span-x4": 40.0}
IMAGES = ("photo", "random", "bars")
TFBRIDGE = Path(__file__).resolve().parents[2] / "web" / "tfbridge.js"
# web/tfbridge.js in node: its centredSigmoidsAsTanh on stdin's {topology, centred}.
AS_TANH = """
const fs = require('fs'); const vm = require('vm');
const context = { self: {} }; vm.createContext(context);
vm.runInContext(fs.readFileSync(process.argv[1], 'utf8') + ';self.TfBridge = TfBridge;', context);
const { topology, centred } = JSON.parse(fs.readFileSync(0, 'utf8'));
const { centredSigmoidsAsTanh } = context.self.TfBridge;
process.stdout.write(JSON.stringify(centredSigmoidsAsTanh(topology, centred)));
"""


def as_on_half_float_webgl(model):
    """The converted model as TF.js loads it on half-float WebGL: the JS rewrite, run."""
    node = shutil.which("node")
    assert node, "node (npm's) runs web/tfbridge.js's rewrite"
    data = json.dumps({"topology": model.topology,
                       "centred": [list(c) for c in model.centred_sigmoids]})
    done = subprocess.run([node, "-e", AS_TANH, str(TFBRIDGE)], input=data, text=True,
                          capture_output=True, timeout=60, check=True)
    return dataclasses.replace(model, topology=json.loads(done.stdout))


def inputs(photos) -> dict[str, np.ndarray]:
    """A photo crop (the backend matrix's), a smooth random image, black and white bars."""
    photo = Image.open(photos["astronaut.png"]).convert("RGB").crop((180, 90, 180 + SIDE,
                                                                      90 + SIDE))
    coarse = np.random.default_rng(7).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    smooth = Image.fromarray(coarse).resize((SIDE, SIDE), Image.BICUBIC)
    return {"photo": np.asarray(photo), "random": np.asarray(smooth), "bars": bars(SIDE)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """On the 8-bit images the engine would paint from two [0, 1] outputs."""
    a, b = (np.clip(np.round(v * 255), 0, 255) for v in (a, b))
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@dataclass(frozen=True)
class Runs:
    """One SPAN model on one image: ncnn's output, the converted graph's, in float32 and with
    every tensor stored as float16."""

    reference: np.ndarray
    full: GraphRun
    half: GraphRun
    head: float  # the largest |value| before the first convolution
    tanh: GraphRun  # as half-float WebGL runs it: the attention as tanh(z / 2) / 2
    tanh_full: GraphRun  # the same in float32


@pytest.fixture(scope="module")
def runs(ncnn_by_id, photos) -> dict[tuple[str, str], Runs]:
    """By (model id, image name)."""
    found = {}
    for model_id in SPAN_IDS:
        param, weights = ncnn_by_id[model_id]
        text, data = param.read_text(), weights.read_bytes()
        model, reference = convert(text, data), NcnnNet.load(text, data)
        webgl = as_on_half_float_webgl(model)
        nodes = model.topology["node"]
        first_conv = next(i for i, node in enumerate(nodes) if node["op"] == "_FusedConv2D")
        before = {node["name"] for node in nodes[:first_conv]}
        for name, image in inputs(photos).items():
            x = image.astype(np.float32) / 255
            full = run_graph(model, x)
            head = max(v for node, v in full.peaks.items() if node in before)
            found[model_id, name] = Runs(reference.forward(x), full,
                                         run_graph(model, x, half=True), head,
                                         run_graph(webgl, x, half=True), run_graph(webgl, x))
    return found


@pytest.mark.parametrize("model_id", SPAN_IDS)
def test_the_rewritten_graph_computes_what_ncnn_does(runs, model_id):
    for name in IMAGES:
        run = runs[model_id, name]
        difference = float(np.abs(run.full.output - run.reference).max())
        assert difference < FLOAT32_BOUND, (name, difference)


@pytest.mark.parametrize("model_id", SPAN_IDS)
def test_no_tensor_comes_near_the_half_float_limit(runs, model_id):
    """The input's x 255 is in the first convolution's weights: nothing before that
    convolution leaves the input's range, and nothing after it passes 1/64 of 65504."""
    for name in IMAGES:
        run = runs[model_id, name]
        assert run.head <= 1, (name, run.head)
        node, peak = max(run.full.peaks.items(), key=lambda item: item[1])
        assert peak < HALF_MAX / 64, (name, node, peak)


@pytest.mark.parametrize("model_id", SPAN_IDS)
def test_half_floats_stay_within_45_db_of_float32(runs, model_id):
    for name in IMAGES:
        run = runs[model_id, name]
        db = psnr(run.half.output, run.full.output)
        assert db >= (HALF_DB_EDGES.get(model_id, HALF_DB) if name == "bars" else HALF_DB), \
            (name, db)


@pytest.mark.parametrize("model_id", SPAN_IDS)
def test_the_attention_is_named_and_as_tanh_keeps_45_db_on_half_floats(runs, ncnn_by_id,
                                                                        model_id):
    """Six blocks, each sigmoid(z) - 0.5; as tanh(z / 2) / 2 the same in float32, and every
    SPAN within 45 dB of float32 on half floats, on the bars too (span-x4: 41 -> 50 dB)."""
    param, weights = ncnn_by_id[model_id]
    model = convert(param.read_text(), weights.read_bytes())
    assert len(model.centred_sigmoids) == 6
    assert model.model_json([])["userDefinedMetadata"]["centredSigmoids"] == [
        list(c) for c in model.centred_sigmoids]
    webgl = as_on_half_float_webgl(model)
    ops = [node["op"] for node in webgl.topology["node"]]
    before = [node["op"] for node in model.topology["node"]]
    assert ops.count("Tanh") == 6 and ops.count("Sigmoid") == before.count("Sigmoid") - 6
    assert ops.count("Sub") == before.count("Sub") - 6 and len(ops) == len(before) + 6
    for name in IMAGES:
        run = runs[model_id, name]
        assert np.abs(run.tanh_full.output - run.full.output).max() < FLOAT32_BOUND, name
        assert psnr(run.tanh.output, run.full.output) >= HALF_DB, (name, psnr(run.tanh.output,
                                                                              run.full.output))


GRAPH = [{"name": "x", "op": "Placeholder"}, {"name": "half", "op": "Const"},
         {"name": "s", "op": "Sigmoid", "input": ["x"]},
         {"name": "d", "op": "Sub", "input": ["s", "half"]}]


@pytest.mark.parametrize("nodes, triple", [
    (GRAPH[:1], ("x", "y", "z")),  # not in the graph
    (GRAPH, ("s", "half", "d")),  # in the wrong order
    (GRAPH + [{"name": "e", "op": "AddV2", "input": ["s:0", "x"]}], ("s", "d", "half")),
], ids=["absent", "misnamed", "read-twice"])
def test_a_centred_sigmoid_that_is_not_one_in_the_graph_is_refused(nodes, triple):
    """The JS checks the metadata against the graph: a sigmoid anything else reads stays."""
    from upscale.ncnn import Converted

    model = Converted({"node": nodes}, [], b"", 2, 0, (), (triple,))
    with pytest.raises(subprocess.CalledProcessError) as failure:
        as_on_half_float_webgl(model)
    assert "name no sigmoid(z) - 0.5 in its graph" in failure.value.stderr
    alone = Converted({"node": GRAPH}, [], b"", 2, 0, (), (("s", "d", "half"),))
    assert [n["op"] for n in as_on_half_float_webgl(alone).topology["node"]] == [
        "Placeholder", "Const", "Mul", "Tanh", "Mul"]
