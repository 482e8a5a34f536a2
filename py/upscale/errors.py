"""Every error Upscale raises on purpose, with its message as a named constant.

Each crosses to JavaScript as `{name: type(error).__name__, message}` (bridge.Refusal), so the
page can tell a corrupt file from an oversized one without parsing text.
"""

from __future__ import annotations

PATCH_TOO_SMALL = (
    "patchSize must be more than twice the padding: got patchSize {patch_size}, padding {padding}"
)
BAD_INTEGER = "{name} must be a whole number between {low} and {high}: got {value!r}"
BAD_SHAPE = "expected an image of shape (height, width, 3 or 4) in uint8: got {shape} {dtype}"
BAD_PIXEL_COUNT = "{width}x{height} RGBA needs {want:,} bytes: got {got:,}"
BAD_BACKEND = "backend must be one of {known}: got {backend!r}"
PATCH_MEMORY = (
    "patchSize {patch} with padding {padding} is more than {model} can run here: its "
    "activations would need over {gib} GiB. Use at most {most}"
)
BOTH_FILES = "a model of your own needs both files: ncnn: { param, bin } (ArrayBuffers)"
BAD_ENCODING = "type must be one of {known}: got {got!r}"
BAD_QUALITY = "quality must be a number from 0 to 1: got {got!r}"
BAD_RANGE = "inputRange must be [0, max] with max > 0: got {got!r}"
WRONG_SCALE = "scale {scale!r} was given, but this network enlarges {actual} times"
BAD_RUN_SCALE = "runScale {run_scale} must be a whole multiple of the scale {scale}"
GPU_PATCH = (
    "patchSize {patch} is more than this GPU can hold for {model}: at most {most} (its largest "
    "textures would not fit)"
)
EMPTY_FILE = "the file is empty (0 bytes)"
NOT_AN_IMAGE = "not an image this page can read (accepted: {accepted})"
UNSUPPORTED_FORMAT = "{format} images are not supported (accepted: {accepted})"
CORRUPT_IMAGE = "the {format} file is damaged or truncated and cannot be decoded ({detail})"
TOO_LARGE = (
    "the image is {width}x{height} = {pixels:,} pixels; the limit is {limit:,} pixels"
)
TOO_MUCH_MEMORY = (
    "a {width}x{height} result would hold about {total} of memory while it is made ({parts}); "
    "this device allows {limit} for one job: use a smaller image or a lower scale"
)
TOO_WIDE = (
    "the result would be {width}x{height} pixels; a browser canvas holds at most {side} pixels "
    "a side, so it could not be shown or saved"
)
ZIP_TOO_LARGE = (
    "these {count} files are {total}: zipping them at once would hold about {need}, and this "
    "device allows {limit}. Download them one by one, or zip fewer at a time"
)
MODEL_OUTPUT = "the model returned a tile of shape {got}; expected {want}"
BAD_REDUCE = "reduce must be a whole number that divides the scale {scale}: got {reduce!r}"
CANCELLED = "the upscale was cancelled after {done} of {total} tiles"
UNSUPPORTED_LAYER = (
    "layer type {type} ({name}) is not supported: Upscale refuses it rather than run it wrongly"
)
UNSUPPORTED_PARAM = "{layer} uses {detail}, which Upscale does not support"
BAD_MODEL = "not a valid ncnn model: {detail}"
NOT_AN_UPSCALER = "not an image upscaler: {detail}"
BAD_ROUTING = "the routing table (routing.json) is not usable: {detail}"
NO_AUTO_SCALE = "model 'auto' needs a scale it routes: {scale!r} is not one of {known}"


class UpscaleError(Exception):
    """Base of the errors a user can meet; the class name is the error's code."""


class InvalidOptions(UpscaleError):
    pass


class InvalidImage(UpscaleError):
    pass


class EmptyFile(InvalidImage):
    pass


class NotAnImage(InvalidImage):
    pass


class UnsupportedFormat(InvalidImage):
    pass


class CorruptImage(InvalidImage):
    pass


class InvalidModel(UpscaleError):
    """A model file that is malformed, or a .param and .bin that do not belong together."""


class UnsupportedModel(UpscaleError):
    """A well-formed model that uses something the converter does not map."""


class ImageTooLarge(UpscaleError):
    pass


class ModelOutputError(UpscaleError):
    pass


class Cancelled(UpscaleError):
    """A job stopped between tiles: `done` of its `total` tiles went to the model."""

    def __init__(self, done: int, total: int):
        super().__init__(CANCELLED.format(done=done, total=total))
        self.done = done
        self.total = total
