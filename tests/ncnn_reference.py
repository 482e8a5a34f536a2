"""A plain-numpy forward pass of ncnn models, for tests only.

It reads ncnn's `.param` text and `.bin` weights itself and follows ncnn's reference layers
(`src/layer/*.cpp`, the naive CPU code every optimised backend must agree with) one by one.
It shares nothing with `upscale.ncnn` on purpose: it is the independent yardstick that the
converter's TF.js graphs are checked against, so a misreading of ncnn in one is not silently
repeated in the other. Written to be read and trusted, not to be fast.

Blobs are numpy arrays in ncnn's own axis order: 1-D (w,), 2-D (h, w), 3-D (c, h, w),
4-D (c, d, h, w); an image is 3-D.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAGIC = 7767517
FLOAT16_TAG = 0x01306B47
INT8_TAG = 0x000D4B38
FLOAT32_TAG = 0x0002C056  # raw float32 "with extra scaling" (read like untagged data)
SAME_UPPER = -233  # pad value meaning TF/ONNX SAME (extra pixel at the end)
SAME_LOWER = -234  # ONNX SAME_LOWER (extra pixel at the start)
NOT_SET = -233  # Crop's "this extent is not given"

Blob = np.ndarray
Forward = Callable[[list[Blob]], list[Blob]]


# --- .param values --------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    """One layer's `k=v` parameters. A value is a float when its spelling has '.', 'e' or 'E'
    (ncnn's rule), else an int; arrays (`-233xx=n,a,b`) type each element the same way.

    Read as a float, an int-spelled value is converted ("2=1" is 1.0, as in ncnn 1.0.20261020).
    Read as an int, a float-spelled value is refused: ncnn releases disagree there (older ones
    reinterpret the float's bits, newer ones ignore it), so no converter should rely on it.
    """

    scalars: dict[int, int | float]
    arrays: dict[int, tuple[int | float, ...]]
    strings: dict[int, str]

    @classmethod
    def parse(cls, tokens: list[str]) -> Params:
        scalars: dict[int, int | float] = {}
        arrays: dict[int, tuple[int | float, ...]] = {}
        strings: dict[int, str] = {}
        for token in tokens:
            key, sep, value = token.partition("=")
            if not sep:
                raise ValueError(f"bad param {token!r}")
            pid = int(key)
            if pid <= -23300:
                count, *items = value.split(",")
                if int(count) != len(items):
                    raise ValueError(f"param {token!r}: {count} items announced")
                arrays[-pid - 23300] = tuple(_number(item) for item in items)
            elif value[:1].isalpha() or value[:1] == '"':
                strings[pid] = value.strip('"')
            else:
                scalars[pid] = _number(value)
        return cls(scalars, arrays, strings)

    def int(self, pid: int, default: int) -> int:
        value = self.scalars.get(pid, default)
        if isinstance(value, float):
            raise ValueError(f"param {pid}={value} is spelled as a float where ncnn reads an int")
        return value

    def float(self, pid: int, default: float) -> float:
        return float(np.float32(self.scalars.get(pid, default)))

    def floats(self, pid: int) -> np.ndarray:
        return np.array(self.arrays.get(pid, ()), np.float32)

    def ints(self, pid: int) -> np.ndarray:
        values = self.arrays.get(pid, ())
        if any(isinstance(v, float) for v in values):
            raise ValueError(f"param array {pid}={values} has floats where ncnn reads ints")
        return np.array(values, np.int64)

    def has(self, pid: int) -> bool:
        return pid in self.scalars or pid in self.arrays or pid in self.strings


def _number(text: str) -> int | float:
    if "." in text or "e" in text.lower():
        return float(np.float32(float(text)))
    return int(text)


# --- .bin weights ---------------------------------------------------------------------------


class _WeightStream:
    """Reads `.bin` data in declaration order, the way ncnn's ModelBinFromDataReader does."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise ValueError(f".bin too short: need {size} bytes at offset {self.offset}, "
                             f"have {len(self.data) - self.offset}")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def raw(self, count: int) -> np.ndarray:
        """`mb.load(count, 1)`: plain little-endian float32, no tag."""
        return np.frombuffer(self._take(4 * count), "<f4").astype(np.float32)

    def tagged(self, count: int) -> np.ndarray:
        """`mb.load(count, 0)`: a 4-byte tag, then data of the kind it names."""
        head = self._take(4)
        (tag,) = struct.unpack("<I", head)
        if tag == FLOAT16_TAG:
            size = 2 * count
            data = self._take(size + (-size) % 4)  # fp16 data is padded to 4 bytes
            return np.frombuffer(data[:size], "<f2").astype(np.float32)
        if tag == INT8_TAG:
            raise ValueError("int8 weights are not supported")
        if tag == FLOAT32_TAG or tag == 0:
            return self.raw(count)
        # any other non-zero tag: a 256-entry float table indexed by one byte per weight
        table = self.raw(256)
        index = np.frombuffer(self._take(count + (-count) % 4)[:count], np.uint8)
        return table[index]

    def load(self, count: int, load_type: int) -> np.ndarray:
        return self.tagged(count) if load_type == 0 else self.raw(count)


# --- the net ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    forward: Forward


@dataclass(frozen=True)
class NcnnNet:
    """An ncnn net with one Input and one output blob (the blob no layer consumes)."""

    layers: tuple[Layer, ...]
    input_blob: str
    output_blob: str

    @classmethod
    def load(cls, param_text: str, bin_bytes: bytes) -> NcnnNet:
        lines = [line.split() for line in param_text.splitlines() if line.strip()]
        if not lines or lines[0] != [str(MAGIC)]:
            raise ValueError(f"not an ncnn .param file (magic {MAGIC} missing)")
        layer_count, _blob_count = (int(v) for v in lines[1])
        if len(lines) - 2 != layer_count:
            raise ValueError(f".param announces {layer_count} layers, has {len(lines) - 2}")
        weights = _WeightStream(bin_bytes)
        layers = []
        for fields in lines[2:]:
            kind, name = fields[0], fields[1]
            n_in, n_out = int(fields[2]), int(fields[3])
            bottoms = tuple(fields[4:4 + n_in])
            tops = tuple(fields[4 + n_in:4 + n_in + n_out])
            params = Params.parse(fields[4 + n_in + n_out:])
            if kind not in LAYERS:
                raise ValueError(f"unsupported layer type {kind}")
            factory = LAYERS[kind]
            forward = _split(len(tops)) if factory is None else factory(params, weights)
            layers.append(Layer(kind, name, bottoms, tops, forward))
        if weights.offset != len(bin_bytes):
            raise ValueError(f".bin has {len(bin_bytes) - weights.offset} bytes no layer read")
        inputs = [layer.tops[0] for layer in layers if layer.type == "Input"]
        consumed = {blob for layer in layers for blob in layer.bottoms}
        leaves = [blob for layer in layers for blob in layer.tops if blob not in consumed]
        if len(inputs) != 1 or len(leaves) != 1:
            raise ValueError(f"need one input and one output blob, have {inputs} and {leaves}")
        return cls(tuple(layers), inputs[0], leaves[0])

    def forward(self, image: np.ndarray) -> np.ndarray:
        """image: float32 (H, W, C) in the model's input range (for these SR models: [0,1]).
        Returns float32 (H', W', C'): the net's single output blob, in HWC layout."""
        if image.ndim != 3:
            raise ValueError(f"image must be (H, W, C), got shape {image.shape}")
        blobs = {self.input_blob: np.ascontiguousarray(image.transpose(2, 0, 1), np.float32)}
        for layer in self.layers:
            if layer.type == "Input":
                continue
            outputs = layer.forward([blobs[name] for name in layer.bottoms])
            if len(outputs) != len(layer.tops):
                raise ValueError(f"{layer.type} {layer.name}: {len(outputs)} outputs for "
                                 f"{len(layer.tops)} top blobs")
            for name, blob in zip(layer.tops, outputs, strict=True):
                blobs[name] = blob.astype(np.float32, copy=False)
        out = blobs[self.output_blob]
        if out.ndim != 3:
            raise ValueError(f"output blob {self.output_blob} is {out.ndim}-D, not an image")
        return np.ascontiguousarray(out.transpose(1, 2, 0))


# --- activations ----------------------------------------------------------------------------


def _sigmoid(x: Blob) -> Blob:
    x = np.clip(x, -88.3762626647949, 88.3762626647949)
    return 1 / (1 + np.exp(-x))


def _swish(x: Blob) -> Blob:
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -88: x / inf = -0, as in C
        return x / (1 + np.exp(-x))


def _activate(x: Blob, kind: int, args: np.ndarray) -> Blob:
    """ncnn's fused activation (fused_activation.h, activation_ss)."""
    if kind == 0:
        return x
    if kind == 1:
        return np.maximum(x, 0)
    if kind == 2:
        return np.where(x > 0, x, x * args[0])
    if kind == 3:
        return np.minimum(np.maximum(x, args[0]), args[1])
    if kind == 4:
        return _sigmoid(x)
    if kind == 5:
        with np.errstate(over="ignore"):
            return x * np.tanh(np.log(np.exp(x) + 1))
    if kind == 6:
        alpha, beta = args[0], args[1]
        lower = -beta / alpha
        upper = 1 / alpha + lower
        return np.where(x < lower, 0, np.where(x > upper, x, x * (x * alpha + beta)))
    raise ValueError(f"unsupported activation_type {kind}")


def _one_image(inputs: list[Blob], kind: str) -> Blob:
    (x,) = inputs
    if x.ndim != 3:
        raise ValueError(f"{kind}: only 3-D (c, h, w) blobs are supported, got {x.shape}")
    return x


# --- convolutions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _ConvGeometry:
    kernel: tuple[int, int]  # (h, w), likewise below
    dilation: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, bottom, left, right

    @classmethod
    def read(cls, p: Params) -> _ConvGeometry:
        kw = p.int(1, 0)
        dw, sw, left = p.int(2, 1), p.int(3, 1), p.int(4, 0)
        right, top = p.int(15, left), p.int(14, left)
        return cls((p.int(11, kw), kw), (p.int(12, dw), dw), (p.int(13, sw), sw),
                   (top, p.int(16, top), left, right))

    def extent(self) -> tuple[int, int]:
        """Kernel size with dilation: the input span one output pixel reads."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))


def _pad_for_conv(x: Blob, g: _ConvGeometry, value: float) -> Blob:
    """Convolution::make_padding: explicit pads, or SAME_UPPER / SAME_LOWER (-233 / -234)."""
    top, bottom, left, right = g.pads
    if top > 0 or bottom > 0 or left > 0 or right > 0:
        if min(g.pads) < 0:
            raise ValueError(f"Convolution: pads {g.pads} mix explicit and SAME padding")
        widths = (top, bottom), (left, right)
    elif g.pads in ((SAME_UPPER,) * 4, (SAME_LOWER,) * 4):
        widths = []
        for size, ext, stride in zip(x.shape[1:], g.extent(), g.stride, strict=True):
            total = max(ext + (size - 1) // stride * stride - size, 0)
            small, large = total // 2, total - total // 2
            widths.append((small, large) if g.pads[0] == SAME_UPPER else (large, small))
    else:
        return x
    return np.pad(x, ((0, 0), *widths), constant_values=value)


def _convolve(x: Blob, weight: Blob, groups: int, g: _ConvGeometry) -> Blob:
    """Grouped 2-D cross-correlation of an already padded (C, H, W) blob with weights
    (O, C/groups, kh, kw): out[o, i, j] = sum over c, ky, kx of
    w[o, c, ky, kx] * x[c, i*sh + ky*dh, j*sw + kx*dw], by im2col and one matmul per group."""
    c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = g.stride, g.dilation
    eh, ew = g.extent()
    outh, outw = (h - eh) // sh + 1, (w - ew) // sw + 1
    if outh <= 0 or outw <= 0:
        raise ValueError(f"input {h}x{w} is smaller than the kernel extent {eh}x{ew}")
    cols = np.empty((c, kh, kw, outh, outw), np.float32)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            cols[:, ky, kx] = x[:, y0:y0 + (outh - 1) * sh + 1:sh, x0:x0 + (outw - 1) * sw + 1:sw]
    cols = cols.reshape(groups, cg * kh * kw, outh * outw)
    out = np.matmul(weight.reshape(groups, o // groups, cg * kh * kw), cols)
    return out.reshape(o, outh, outw)


def _make_convolution(p: Params, weights: _WeightStream, grouped: bool) -> Forward:
    kind = "ConvolutionDepthWise" if grouped else "Convolution"
    num_output, bias_term, size = p.int(0, 0), p.int(5, 0), p.int(6, 0)
    groups = p.int(7, 1) if grouped else 1
    if p.int(8, 0) or p.int(19, 0):
        raise ValueError(f"{kind}: int8 and dynamic weights are not supported")
    if num_output % groups:
        raise ValueError(f"{kind}: num_output {num_output} is not a multiple of group {groups}")
    geometry = _ConvGeometry.read(p)
    pad_value = p.float(18, 0.0)
    activation, activation_args = p.int(9, 0), p.floats(10)
    kh, kw = geometry.kernel
    flat = weights.tagged(size)
    bias = weights.raw(num_output) if bias_term else np.zeros(num_output, np.float32)

    def forward(inputs: list[Blob]) -> list[Blob]:
        x = _one_image(inputs, kind)
        per_group = x.shape[0] // groups
        if x.shape[0] % groups or flat.size != num_output * per_group * kh * kw:
            raise ValueError(f"{kind}: {flat.size} weights do not fit {x.shape[0]} input "
                             f"channels, {num_output} outputs, group {groups}, {kh}x{kw}")
        weight = flat.reshape(num_output, per_group, kh, kw)
        out = _convolve(_pad_for_conv(x, geometry, pad_value), weight, groups, geometry)
        out += bias[:, None, None]
        return [_activate(out, activation, activation_args)]

    return forward


def _make_deconvolution(p: Params, weights: _WeightStream) -> Forward:
    num_output, bias_term, size = p.int(0, 0), p.int(5, 0), p.int(6, 0)
    if p.int(28, 0):
        raise ValueError("Deconvolution: dynamic weights are not supported")
    geometry = _ConvGeometry.read(p)
    output_pad_right = p.int(18, 0)
    output_pad = (p.int(19, output_pad_right), output_pad_right)
    output_w = p.int(20, 0)
    output_size = (p.int(21, output_w), output_w)
    activation, activation_args = p.int(9, 0), p.floats(10)
    kh, kw = geometry.kernel
    flat = weights.tagged(size)
    bias = weights.raw(num_output) if bias_term else np.zeros(num_output, np.float32)

    def forward(inputs: list[Blob]) -> list[Blob]:
        x = _one_image(inputs, "Deconvolution")
        c, h, w = x.shape
        if flat.size != num_output * c * kh * kw:
            raise ValueError(f"Deconvolution: {flat.size} weights do not fit {c} input "
                             f"channels, {num_output} outputs, {kh}x{kw}")
        # ncnn's reference (deconvolution.cpp) reads the kernel as (outch, inch, kh, kw) and
        # scatters without flipping: out[p, i*sh + ky*dh, j*sw + kx*dw] += w[p,q,ky,kx] x[q,i,j]
        weight = flat.reshape(num_output, c, kh, kw)
        (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
        eh, ew = geometry.extent()
        outh = (h - 1) * sh + eh + output_pad[0]
        outw = (w - 1) * sw + ew + output_pad[1]
        out = np.empty((num_output, outh, outw), np.float32)
        out[:] = bias[:, None, None]
        pixels = x.reshape(c, h * w)
        for ky in range(kh):
            for kx in range(kw):
                tap = (weight[:, :, ky, kx] @ pixels).reshape(num_output, h, w)
                y0, x0 = ky * dh, kx * dw
                out[:, y0:y0 + (h - 1) * sh + 1:sh, x0:x0 + (w - 1) * sw + 1:sw] += tap
        out = _activate(out, activation, activation_args)
        return [_cut_deconvolution(out, geometry.pads, output_size)]

    return forward


def _cut_deconvolution(out: Blob, pads: tuple[int, int, int, int],
                       output_size: tuple[int, int]) -> Blob:
    """Deconvolution::cut_padding: pads crop the full output; else output_w/h with SAME."""
    top, bottom, left, right = pads
    if top > 0 or bottom > 0 or left > 0 or right > 0:
        if min(pads) < 0:
            raise ValueError(f"Deconvolution: pads {pads} mix explicit and SAME padding")
        return out[:, top:out.shape[1] - bottom, left:out.shape[2] - right]
    if output_size[0] > 0 and output_size[1] > 0:
        cuts = [size - want for size, want in zip(out.shape[1:], output_size, strict=True)]
        if min(cuts) < 0:
            raise ValueError(f"Deconvolution: output {output_size} exceeds the full {out.shape}")
        if SAME_UPPER in pads:
            (ya, yb), (xa, xb) = ((cut // 2, cut - cut // 2) for cut in cuts)
        elif SAME_LOWER in pads:
            (ya, yb), (xa, xb) = ((cut - cut // 2, cut // 2) for cut in cuts)
        else:
            raise ValueError("Deconvolution: output_w/output_h need pads -233 or -234")
        return out[:, ya:out.shape[1] - yb, xa:out.shape[2] - xb]
    return out


# --- element-wise ---------------------------------------------------------------------------


def _unary(function: Callable[[Blob], Blob]) -> Callable[[Params, _WeightStream], Forward]:
    def make(_p: Params, _weights: _WeightStream) -> Forward:
        def forward(inputs: list[Blob]) -> list[Blob]:
            (x,) = inputs
            return [function(x)]

        return forward

    return make


def _make_relu(p: Params, _weights: _WeightStream) -> Forward:
    slope = np.float32(p.float(0, 0.0))
    return lambda inputs: [np.where(inputs[0] < 0, inputs[0] * slope, inputs[0])]


def _make_clip(p: Params, _weights: _WeightStream) -> Forward:
    low = np.float32(p.float(0, -np.finfo(np.float32).max))
    high = np.float32(p.float(1, np.finfo(np.float32).max))
    return lambda inputs: [np.minimum(np.maximum(inputs[0], low), high)]


def _make_prelu(p: Params, weights: _WeightStream) -> Forward:
    slopes = weights.raw(p.int(0, 0))

    def forward(inputs: list[Blob]) -> list[Blob]:
        (x,) = inputs
        # per channel for 3-D/4-D, per row for 2-D, per element for 1-D: always axis 0
        slope = slopes.reshape((-1,) + (1,) * (x.ndim - 1)) if slopes.size > 1 else slopes[0]
        return [np.where(x < 0, x * slope, x)]

    return forward


BINARY_OPS: dict[int, Callable[[Blob, Blob], Blob]] = {
    0: np.add,
    1: np.subtract,
    2: np.multiply,
    3: np.divide,
    4: np.maximum,
    5: np.minimum,
    6: np.power,
    7: lambda a, b: b - a,
    8: lambda a, b: b / a,
    9: lambda a, b: np.power(b, a),
    10: np.arctan2,
    11: lambda a, b: np.arctan2(b, a),
}


def _expand_for_binary(a: Blob, b: Blob) -> Blob:
    """BinaryOp's rule for a blob with fewer dims than the other (binaryop.cpp, "expand inner
    axes"): a 1-D blob whose length is the other's outermost extent (channels, or rows of a
    2-D blob) lines up with that axis; any other 1-D blob lines up with the width; a 2-D or
    3-D blob gains trailing axes of 1."""
    missing = b.ndim - a.ndim
    if missing <= 0:
        return a
    if a.ndim == 1 and a.shape[0] != b.shape[0]:
        return a.reshape((1,) * missing + a.shape)
    return a.reshape(a.shape + (1,) * missing)


def _make_binary_op(p: Params, _weights: _WeightStream) -> Forward:
    op_type, with_scalar, scalar = p.int(0, 0), p.int(1, 0), np.float32(p.float(2, 0.0))
    if op_type not in BINARY_OPS:
        raise ValueError(f"unsupported BinaryOp op_type {op_type}")
    op = BINARY_OPS[op_type]

    def forward(inputs: list[Blob]) -> list[Blob]:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if with_scalar:
                (a,) = inputs
                return [op(a, scalar).astype(np.float32)]
            a, b = inputs
            a, b = _expand_for_binary(a, b), _expand_for_binary(b, a)
            for size_a, size_b in zip(a.shape, b.shape, strict=True):
                if size_a != size_b and 1 not in (size_a, size_b):
                    raise ValueError(f"BinaryOp: cannot broadcast {a.shape} with {b.shape}")
            return [op(a, b).astype(np.float32)]

    return forward


def _make_eltwise(p: Params, _weights: _WeightStream) -> Forward:
    op_type, coeffs = p.int(0, 0), p.floats(1)
    if op_type not in (0, 1, 2):
        raise ValueError(f"unsupported Eltwise op_type {op_type}")

    def forward(inputs: list[Blob]) -> list[Blob]:
        if any(x.shape != inputs[0].shape for x in inputs):
            raise ValueError(f"Eltwise: shapes differ: {[x.shape for x in inputs]}")
        if op_type == 0:
            out = inputs[0] * inputs[1]
            for x in inputs[2:]:
                out = out * x
        elif op_type == 2:
            out = np.maximum(inputs[0], inputs[1])
            for x in inputs[2:]:
                out = np.maximum(out, x)
        elif coeffs.size == 0:
            out = inputs[0] + inputs[1]
            for x in inputs[2:]:
                out = out + x
        else:
            out = inputs[0] * coeffs[0] + inputs[1] * coeffs[1]
            for k, x in enumerate(inputs[2:], start=2):
                out = out + x * coeffs[k]
        return [out]

    return forward


# --- data movement --------------------------------------------------------------------------


def _make_input(_p: Params, _weights: _WeightStream) -> Forward:
    def forward(_inputs: list[Blob]) -> list[Blob]:
        raise AssertionError("Input is fed by NcnnNet.forward")

    return forward


def _split(fanout: int) -> Forward:
    """Split: every top gets the bottom blob (a copy, so no consumer can disturb another)."""
    return lambda inputs: [inputs[0].copy() for _ in range(fanout)]


def _make_memory_data(p: Params, weights: _WeightStream) -> Forward:
    w, h, d, c = p.int(0, 0), p.int(1, 0), p.int(11, 0), p.int(2, 0)
    load_type = p.int(21, 1)
    if d:
        shape = (c, d, h, w)
    elif c:
        shape = (c, h, w)
    elif h:
        shape = (h, w)
    elif w:
        shape = (w,)
    else:
        shape = ()
    if shape:
        data = weights.load(int(np.prod(shape)), load_type).reshape(shape)
    else:
        data = np.zeros(1, np.float32)  # ncnn: data.create(1), contents unset
    return lambda _inputs: [data.copy()]


def _make_concat(p: Params, _weights: _WeightStream) -> Forward:
    axis = p.int(0, 0)

    def forward(inputs: list[Blob]) -> list[Blob]:
        dims = inputs[0].ndim
        return [np.concatenate(inputs, axis=axis + dims if axis < 0 else axis)]

    return forward


def _make_pixel_shuffle(p: Params, _weights: _WeightStream) -> Forward:
    r, mode = p.int(0, 1), p.int(1, 0)

    def forward(inputs: list[Blob]) -> list[Blob]:
        x = _one_image(inputs, "PixelShuffle")
        c, h, w = x.shape
        outc = c // (r * r)
        if mode == 0:  # PyTorch: input channel p*r*r + sh*r + sw
            blocks = x[:outc * r * r].reshape(outc, r, r, h, w)
        else:  # input channel (sh*r + sw)*outc + p, as TF's depth_to_space
            blocks = x[:outc * r * r].reshape(r, r, outc, h, w).transpose(2, 0, 1, 3, 4)
        # blocks[p, sh, sw, i, j] goes to out[p, i*r + sh, j*r + sw]
        return [blocks.transpose(0, 3, 1, 4, 2).reshape(outc, h * r, w * r)]

    return forward


def _make_crop(p: Params, _weights: _WeightStream) -> Forward:
    offsets = {"w": p.int(0, 0), "h": p.int(1, 0), "d": p.int(13, 0), "c": p.int(2, 0)}
    sizes = {"w": p.int(3, 0), "h": p.int(4, 0), "d": p.int(14, 0), "c": p.int(5, 0)}
    ends = {"w": p.int(6, 0), "h": p.int(7, 0), "d": p.int(15, 0), "c": p.int(8, 0)}
    starts_, ends_, axes_ = p.ints(9), p.ints(10), p.ints(11)
    if any(p.has(pid) for pid in (19, 20, 21)):
        raise ValueError("Crop: expression forms (19/20/21) are not supported")
    numpy_style = starts_.size > 0 and ends_.size > 0

    def forward(inputs: list[Blob]) -> list[Blob]:
        x = inputs[0]
        names = {1: "w", 2: "hw", 3: "chw", 4: "cdhw"}[x.ndim]
        extent = dict(zip(names, x.shape, strict=True))
        if numpy_style:  # Crop::resolve_crop_roi, starts/ends/axes (end -233 = to the end)
            box = {axis: (0, size) for axis, size in extent.items()}
            axes = [int(a) + x.ndim if a < 0 else int(a) for a in axes_]
            for axis, start, end in zip(axes or range(x.ndim), starts_, ends_, strict=False):
                name, size = names[axis], x.shape[axis]
                start = 0 if start == NOT_SET else int(start)
                end = size if end == NOT_SET else int(end)
                start = start if start >= 0 else size + start
                box[name] = (start, min(size, end if end > 0 else size + end))
        elif len(inputs) == 2:  # sizes from a reference blob, offsets from the params
            ref = dict(zip({1: "w", 2: "hw", 3: "chw", 4: "cdhw"}[inputs[1].ndim],
                           inputs[1].shape, strict=True))
            box = {}
            for name, size in extent.items():
                want = size if name == "c" and inputs[1].ndim != x.ndim else ref[name]
                box[name] = (offsets[name], offsets[name] + want)
        else:  # offsets, then outw/outh/outc (-233: not given) or the far offsets 6/7/8
            box = {}
            for name, size in extent.items():
                length = size - offsets[name] - ends[name]
                if sizes[name] != NOT_SET:
                    length = min(sizes[name], length)
                box[name] = (offsets[name], offsets[name] + length)
        if any(stop <= start or start < 0 or stop > extent[n] for n, (start, stop) in box.items()):
            raise ValueError(f"Crop: empty or out-of-range box {box} for shape {x.shape}")
        return [x[tuple(slice(*box[name]) for name in names)]]

    return forward


def _make_padding(p: Params, weights: _WeightStream) -> Forward:
    top, bottom, left, right = p.int(0, 0), p.int(1, 0), p.int(2, 0), p.int(3, 0)
    kind, value = p.int(4, 0), np.float32(p.float(5, 0.0))
    front, behind = p.int(7, 0), p.int(8, 0)
    per_channel_size = p.int(6, 0)
    per_channel = weights.raw(per_channel_size) if per_channel_size else None
    if kind not in (0, 1, 2):
        raise ValueError(f"unsupported Padding type {kind}")
    mode = {0: "constant", 1: "edge", 2: "reflect"}[kind]

    def forward(inputs: list[Blob]) -> list[Blob]:
        x = _one_image(inputs, "Padding")
        widths = ((front, behind), (top, bottom), (left, right))
        if kind != 0:
            return [np.pad(x, widths, mode=mode)]
        values = per_channel if per_channel is not None else np.full(
            x.shape[0] + front + behind, value, np.float32)
        out = np.pad(x, widths)  # zeros, then each output channel's own pad value
        inside = np.zeros(out.shape[1:], bool)
        inside[top:top + x.shape[1], left:left + x.shape[2]] = True
        for q in range(out.shape[0]):
            real = front <= q < front + x.shape[0]
            out[q][~inside if real else slice(None)] = values[q]
        return [out]

    return forward


# --- Interp ---------------------------------------------------------------------------------


def _linear_taps(size: int, out_size: int, step: float,
                 align_corner: int) -> tuple[np.ndarray, np.ndarray]:
    """interp.cpp linear_coeffs: for each output index, source indices (2) and weights."""
    if size < 2:
        raise ValueError(f"Interp bilinear: ncnn reads outside a {size} px axis")
    scale = (size - 1) / (out_size - 1) if align_corner else step
    index = np.empty((out_size, 2), np.int64)
    weight = np.empty((out_size, 2), np.float32)
    for dx in range(out_size):
        fx = np.float32(dx * scale if align_corner else (dx + 0.5) * scale - 0.5)
        sx = int(np.floor(fx))
        fx -= sx
        if sx < 0:
            sx, fx = 0, np.float32(0)
        if sx >= size - 1:
            sx, fx = size - 2, np.float32(1)
        index[dx] = (sx, sx + 1)
        weight[dx] = (1 - fx, fx)
    return index, weight


def _cubic_taps(size: int, out_size: int, step: float,
                align_corner: int) -> tuple[np.ndarray, np.ndarray]:
    """interp.cpp cubic_coeffs (A = -0.75): four source indices sx-1..sx+2 and weights; near
    the borders ncnn folds the weights of taps outside the image onto the edge pixels."""
    scale = (size - 1) / (out_size - 1) if align_corner else step
    index = np.empty((out_size, 4), np.int64)
    weight = np.empty((out_size, 4), np.float32)
    a = np.float32(-0.75)
    for dx in range(out_size):
        fx = np.float32(dx * scale if align_corner else (dx + 0.5) * scale - 0.5)
        sx = int(np.floor(fx))
        fx = np.float32(fx - sx)
        f0, f1, f2 = fx + 1, fx, 1 - fx
        c = [a * f0 * f0 * f0 - 5 * a * f0 * f0 + 8 * a * f0 - 4 * a,
             (a + 2) * f1 * f1 * f1 - (a + 3) * f1 * f1 + 1,
             (a + 2) * f2 * f2 * f2 - (a + 3) * f2 * f2 + 1]
        c.append(1 - c[0] - c[1] - c[2])
        if sx <= -1:
            sx, c = 1, [1 - c[3], c[3], 0, 0]
        if sx == 0:
            sx, c = 1, [c[0] + c[1], c[2], c[3], 0]
        if sx == size - 2:
            sx, c = size - 3, [0, c[0], c[1], c[2] + c[3]]
        if sx >= size - 1:
            sx, c = size - 3, [0, 0, c[0], 1 - c[0]]
        index[dx] = (sx - 1, sx, sx + 1, sx + 2)
        weight[dx] = c
    if index.min() < 0 or index.max() >= size:
        raise ValueError(f"Interp bicubic: ncnn reads outside a {size} px axis here")
    return index, weight


def _resample(x: Blob, axis: int, index: np.ndarray, weight: np.ndarray) -> Blob:
    """out[..., o, ...] = sum over k of weight[o, k] * x[..., index[o, k], ...] along axis."""
    moved = np.moveaxis(x, axis, -1)
    out = (moved[..., index] * weight).sum(axis=-1, dtype=np.float32)
    return np.moveaxis(out, -1, axis)


def _make_interp(p: Params, _weights: _WeightStream) -> Forward:
    kind = p.int(0, 0)
    height_scale, width_scale = np.float32(p.float(1, 1.0)), np.float32(p.float(2, 1.0))
    output_height, output_width = p.int(3, 0), p.int(4, 0)
    align_corner = p.int(6, 0)
    if kind not in (1, 2, 3):
        raise ValueError(f"unsupported Interp resize_type {kind}")
    if p.int(5, 0) or p.has(9):
        raise ValueError("Interp: dynamic target sizes are not supported")

    def forward(inputs: list[Blob]) -> list[Blob]:
        x = _one_image(inputs, "Interp")
        _c, h, w = x.shape
        outh, outw = output_height, output_width
        if outw == 0 or outh == 0:  # float32 product, truncated, as in C
            outh = int(np.float32(h) * height_scale)
            outw = int(np.float32(w) * width_scale)
        if (outh, outw) == (h, w):
            return [x]
        out = x
        # width first, then height: the order of ncnn's hresize / vresize passes
        for axis, size, out_size, given, scale in (
                (2, w, outw, output_width, width_scale), (1, h, outh, output_height, height_scale)):
            # source pixels per output pixel: in/out for an explicit size, else 1/scale (ncnn
            # 1.0.20261020; older releases used in/out for bilinear and bicubic too, which
            # differs only where in*scale is not a whole number)
            step = np.float32(size) / np.float32(out_size) if given else 1 / scale
            if kind == 1:  # nearest: floor(o * step) in float32
                source = (np.arange(out_size, dtype=np.float32) * np.float32(step))
                index = np.minimum(source.astype(np.int64), size - 1)[:, None]
                weight = np.ones((out_size, 1), np.float32)
            elif kind == 2:
                index, weight = _linear_taps(size, out_size, float(step), align_corner)
            else:
                index, weight = _cubic_taps(size, out_size, float(step), align_corner)
            out = _resample(out, axis, index, weight)
        return [out]

    return forward


# --- registry -------------------------------------------------------------------------------


LAYERS: dict[str, Callable[[Params, _WeightStream], Forward] | None] = {
    "Input": _make_input,
    "Convolution": lambda p, w: _make_convolution(p, w, grouped=False),
    "ConvolutionDepthWise": lambda p, w: _make_convolution(p, w, grouped=True),
    "Deconvolution": _make_deconvolution,
    "ReLU": _make_relu,
    "PReLU": _make_prelu,
    "Sigmoid": _unary(_sigmoid),
    "Swish": _unary(_swish),
    "Clip": _make_clip,
    "BinaryOp": _make_binary_op,
    "Eltwise": _make_eltwise,
    "Concat": _make_concat,
    "Split": None,  # built in NcnnNet.load: it needs the layer's top count
    "PixelShuffle": _make_pixel_shuffle,
    "Interp": _make_interp,
    "MemoryData": _make_memory_data,
    "Crop": _make_crop,
    "Padding": _make_padding,
}
