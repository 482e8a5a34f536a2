"""Run a TF.js graph model written by `upscale.ncnn` in numpy, for tests only.

Chromium checks the converted graphs against the ncnn reference (tests/e2e/
test_converted_models.py); this runs them in CPython, where a test can look at every tensor
TF.js would hold: how large it gets, and what storing each one as float16 does to the output.
Storing is all that `half` changes, as on WebGL without float32 render targets: a shader
computes in float32 and writes its result to a half-float texture (weights and the input
included); the sums inside one op, a fused convolution's bias and activation among them, are
not rounded. It knows the ops the converter writes for the catalogue's SPAN models and refuses
any other by name.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

from upscale.ncnn import Converted


@dataclass(frozen=True)
class GraphRun:
    output: np.ndarray  # (H, W, C) float32
    peaks: dict[str, float]  # every computed node: the largest |value| of the tensor it holds


def _text(attr: dict) -> str:
    return base64.b64decode(attr["s"]).decode()


def _ints(attr: dict) -> list[int]:
    return [int(v) for v in attr["list"]["i"]]


def weights_of(model: Converted) -> dict[str, np.ndarray]:
    """The constants, read back from the weight bytes as TF.js reads them."""
    values, offset = {}, 0
    for spec in model.weight_specs:
        count = int(np.prod(spec["shape"], dtype=np.int64))
        stored = "<f2" if spec.get("quantization", {}).get("dtype") == "float16" else \
            {"float32": "<f4", "int32": "<i4"}[spec["dtype"]]
        size = count * np.dtype(stored).itemsize
        data = np.frombuffer(model.weight_data[offset : offset + size], stored)
        values[spec["name"]] = data.astype(spec["dtype"]).reshape(spec["shape"])
        offset += size
    assert offset == len(model.weight_data)
    return values


def _conv(x: np.ndarray, filt: np.ndarray, attr: dict) -> np.ndarray:
    """NHWC x, HWIO filter: TF's Conv2D, stride 1, SAME or VALID."""
    strides, dilations = _ints(attr["strides"]), _ints(attr["dilations"])
    if strides != [1, 1, 1, 1] or dilations != [1, 1, 1, 1]:
        raise NotImplementedError("strided or dilated convolution")
    kh, kw = filt.shape[:2]
    if _text(attr["padding"]) == "SAME":
        x = np.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], h, w, filt.shape[3]), np.float64)
    for i in range(kh):
        for j in range(kw):
            out += x[:, i : i + h, j : j + w, :].astype(np.float64) @ filt[i, j]
    return out


def _fused_conv(inputs: list[np.ndarray], attr: dict) -> np.ndarray:
    x, filt, bias = inputs[:3]
    out = _conv(x, filt, attr) + bias
    ops = [base64.b64decode(s).decode() for s in attr["fused_ops"]["list"]["s"]]
    activation = ops[1] if len(ops) > 1 else None
    if activation in (None, "Relu", "Sigmoid"):
        return UNARY[activation](out) if activation else out
    raise NotImplementedError(f"fused {activation}")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(x, -88.0, 88.0)))


def _depth_to_space(x: np.ndarray, r: int) -> np.ndarray:
    """TF's order: output (h*r + i, w*r + j, c) is input (h, w, (i*r + j)*C + c)."""
    n, h, w, depth = x.shape
    c = depth // (r * r)
    return x.reshape(n, h, w, r, r, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * r, w * r, c)


UNARY = {"Sigmoid": _sigmoid, "Tanh": np.tanh, "Relu": lambda x: np.maximum(x, 0)}
BINARY = {"AddV2": np.add, "Sub": np.subtract, "Mul": np.multiply, "RealDiv": np.divide}


def run_graph(model: Converted, image: np.ndarray, *, half: bool = False) -> GraphRun:
    """`image` (H, W, C) in the model's input range through the graph, every tensor stored as
    float32 or, with `half`, as float16 (one past 65504 becomes infinite, as on a GPU)."""
    consts = weights_of(model)

    def stored(value: np.ndarray) -> np.ndarray:
        value = np.asarray(value, np.float32)
        if not half:
            return value
        with np.errstate(over="ignore"):
            return value.astype(np.float16).astype(np.float32)

    tensors: dict[str, np.ndarray] = {}
    peaks: dict[str, float] = {}
    for node in model.topology["node"]:
        op, name, attr = node["op"], node["name"], node.get("attr", {})
        inputs = [tensors[ref] for ref in node.get("input", [])]
        if op == "Const":
            value = consts[name]
            tensors[name] = stored(value) if value.dtype == np.float32 else value
            continue
        if op == "Placeholder":
            value = image[None]
        elif op == "Identity":
            value = inputs[0]
        elif op == "_FusedConv2D":
            value = _fused_conv(inputs, attr)
        elif op in UNARY:
            value = UNARY[op](inputs[0])
        elif op in BINARY:
            value = BINARY[op](inputs[0], inputs[1])
        elif op == "ConcatV2":
            value = np.concatenate(inputs[:-1], axis=int(inputs[-1].reshape(-1)[0]))
        elif op == "Pad":
            pads = [tuple(int(v) for v in row) for row in inputs[1]]
            value = np.pad(inputs[0], pads, constant_values=attr["constant_value"]["f"])
        elif op == "DepthToSpace":
            value = _depth_to_space(inputs[0], int(attr["block_size"]["i"]))
        else:
            raise NotImplementedError(f"op {op} ({name})")
        with np.errstate(invalid="ignore"):
            peaks[name] = float(np.max(np.abs(value)))
        tensors[name] = stored(value)
    return GraphRun(tensors["output"][0], peaks)
