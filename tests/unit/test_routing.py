"""`auto`: facts read from a file's header, the routing table as data, the rule that builds it."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

from upscale.errors import BAD_ROUTING, InvalidOptions
from upscale.imaging import describe_file, open_image
from upscale.routing import (
    BLUR_CHECKED_FROM_QUALITY,
    BLURRY_BELOW,
    PLAIN,
    PLAIN_BELOW_CONTRAST,
    PLAIN_FROM_QUALITY,
    RESTORE_FROM_CONTRAST,
    Band,
    Condition,
    Facts,
    Outcome,
    RoutingTable,
    ScaleRoutes,
    blur_route,
    build_table,
    contrast,
    jpeg_header,
    jpeg_quality,
    plain_below,
    plain_reason,
    read_facts,
    restore_reason,
    route,
    route_decoded,
    sharpness,
    webp_is_lossless,
    winner,
)

TABLE = RoutingTable({
    2: ScaleRoutes("sharp-x2", (Band(93, "sharp-x2", "jpeg-q95"),
                                Band(83, "clean0-x2", "jpeg-q90"),
                                Band(63, "clean1-x2", "jpeg-q75"),
                                Band(0, "clean3-x2", "jpeg-q50")),
                   {"webp": "clean1-x2"}),
    4: ScaleRoutes("sharp-x4", (Band(0, "sharp-x4", "jpeg-q90"),), {}),
}, "test")


def encoded(kind: str, **options) -> bytes:
    rng = np.random.default_rng(3)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(out, kind, **options)
    return out.getvalue()


@pytest.mark.parametrize("quality, model", [(100, "sharp-x2"), (95, "sharp-x2"), (93, "sharp-x2"),
                                            (92, "clean0-x2"), (83, "clean0-x2"),
                                            (82, "clean1-x2"), (63, "clean1-x2"),
                                            (62, "clean3-x2"), (10, "clean3-x2")])
def test_a_jpeg_goes_to_its_quality_band(quality, model):
    chosen = route(Facts("JPEG", quality, "4:2:0"), 2, TABLE)
    assert chosen.model == model
    assert chosen.why == f"JPEG, quality ≈ {quality}, 4:2:0"


def test_lossless_files_and_pixels_go_to_the_lossless_route():
    for facts in (Facts(), Facts("PNG"), Facts("GIF"), Facts("WEBP", lossless=True)):
        assert route(facts, 2, TABLE).model == "sharp-x2", facts
    assert route(Facts("PNG"), 2, TABLE).why == "PNG: no compression noise"
    assert route(Facts(), 4, TABLE).why == "pixels, not a file: no compression to undo"


def test_a_lossy_format_goes_to_its_route_or_the_middle_jpeg_band():
    assert route(Facts("WEBP"), 2, TABLE).model == "clean1-x2"
    avif = route(Facts("AVIF"), 2, TABLE)
    assert avif.model == "clean1-x2" and avif.why.startswith("AVIF (lossy), routed as a JPEG")


def test_a_scale_the_table_does_not_route_is_refused_by_name():
    with pytest.raises(InvalidOptions) as error:
        route(Facts(), 3, TABLE)
    assert str(error.value) == BAD_ROUTING.format(detail="no route for ×3 (routed: ×2, ×4)")


def test_the_table_round_trips_through_json():
    assert RoutingTable.from_json(json.loads(json.dumps(TABLE.to_json()))) == TABLE
    assert RoutingTable.from_json(json.loads(json.dumps(BLUR_TABLE.to_json()))) == BLUR_TABLE
    assert "blurry" not in TABLE.to_json()["scales"]["2"], "a table without one stays as it was"


BLUR_TABLE = RoutingTable({**TABLE.scales, 2: ScaleRoutes(
    "sharp-x2", TABLE.scales[2].jpeg, TABLE.scales[2].lossy, "restore-x2")}, "test")


@pytest.mark.parametrize("facts, checked", [
    (Facts("PNG"), True), (Facts(), True), (Facts("WEBP"), True),
    (Facts("WEBP", lossless=True), True),
    (Facts("JPEG", BLUR_CHECKED_FROM_QUALITY, "4:2:0"), True),
    (Facts("JPEG", 95, "4:4:4"), True),
    (Facts("JPEG", BLUR_CHECKED_FROM_QUALITY - 1, "4:2:0"), False),  # its noise reads as blur
    (Facts("AVIF"), False),
])
def test_files_whose_pixels_may_hide_a_blurred_photo_get_the_blur_check(facts, checked):
    assert blur_route(facts, 2, BLUR_TABLE) == ("restore-x2" if checked else None)
    assert blur_route(facts, 2, TABLE) is None, "no blurry route, nothing to check"
    assert blur_route(facts, 4, BLUR_TABLE) is None


def test_no_check_where_the_header_already_routes_to_the_blurry_model():
    same = RoutingTable({2: ScaleRoutes("sharp-x2", TABLE.scales[2].jpeg, {}, "sharp-x2")})
    assert blur_route(Facts("PNG"), 2, same) is None


def test_a_build_without_the_blurry_model_drops_its_route():
    assert BLUR_TABLE.within({"sharp-x2", "clean0-x2"}).scales[2].blurry is None
    assert BLUR_TABLE.within(BLUR_TABLE.models()) == BLUR_TABLE
    data = BLUR_TABLE.to_json()
    data["scales"]["2"]["blurry"] = 7
    with pytest.raises(InvalidOptions) as error:
        RoutingTable.from_json(data)
    assert str(error.value) == BAD_ROUTING.format(detail="×2's blurry route")


def test_a_build_with_fewer_models_routes_to_the_lossless_model_and_drops_what_it_lacks():
    table = TABLE.within({"sharp-x2", "clean3-x2", "clean1-x2"})
    assert set(table.scales) == {2}, "x4's lossless model is not served: x4 goes"
    assert route(Facts("JPEG", 90, "4:2:0"), 2, table).model == "sharp-x2"
    assert route(Facts("JPEG", 50, "4:2:0"), 2, table).model == "clean3-x2"
    assert route(Facts("WEBP"), 2, table).model == "clean1-x2"
    assert table.models() == {"sharp-x2", "clean3-x2", "clean1-x2"}
    assert TABLE.within(TABLE.models()) == TABLE
    assert not TABLE.within({"clean1-x2"}).scales


@pytest.mark.parametrize("change, detail", [
    (lambda t: t.update(version=9), "version 9 is not 1"),
    (lambda t: t["scales"]["2"].update(jpeg=[]), "×2 has no JPEG bands"),
    (lambda t: t["scales"]["2"]["jpeg"].reverse(),
     "×2's JPEG bands must go from the highest quality down, each once"),
    (lambda t: t["scales"]["4"]["jpeg"][0].update(atLeast=5),
     "×4's last JPEG band must start at quality 0"),
    (lambda t: t["scales"]["2"].pop("lossless"), "×2 has no lossless model"),
])
def test_a_malformed_table_is_refused_naming_what_is_wrong(change, detail):
    data = TABLE.to_json()
    change(data)
    with pytest.raises(InvalidOptions) as error:
        RoutingTable.from_json(data)
    assert str(error.value) == BAD_ROUTING.format(detail=detail)


def test_facts_come_from_the_header():
    jpeg = encoded("JPEG", quality=78, subsampling=2)
    assert read_facts(jpeg) == Facts("JPEG", 78, "4:2:0")
    assert read_facts(encoded("PNG")).kind == "lossless"
    assert describe_file(jpeg)["facts"] == {"format": "JPEG", "quality": 78,
                                            "subsampling": "4:2:0", "lossless": False}


def test_a_webp_says_whether_it_is_lossless():
    lossless, lossy = encoded("WEBP", lossless=True), encoded("WEBP", quality=80)
    assert webp_is_lossless(lossless) and not webp_is_lossless(lossy)
    assert read_facts(lossless).kind == "lossless"
    assert read_facts(lossy).kind == "webp"
    assert not webp_is_lossless(b"RIFF\x00\x00\x00\x00WEBPVP8X")  # truncated: not claimed


SPEEDS = {"sharp": 100.0, "clean": 150.0, "slow": 400.0}


def test_the_rule_takes_the_best_perceptual_gain_that_keeps_every_photo_above_bicubic():
    outcomes = {"sharp": Outcome((1.0, 0.5), 6.0), "clean": Outcome((2.0, 1.0), 4.0),
                "slow": Outcome((3.0, 3.0), 9.0)}
    assert winner(outcomes, SPEEDS, "sharp") == "sharp"  # slow: more than 3x sharp's time
    outcomes["sharp"] = Outcome((1.0, -0.1), 6.0)  # one photo below bicubic
    assert winner(outcomes, SPEEDS, "sharp") == "clean"


def test_where_no_model_keeps_every_photo_above_bicubic_the_mean_decides_who_may_win():
    outcomes = {"sharp": Outcome((1.0, -0.4), 6.0), "clean": Outcome((0.2, -0.1), 1.0)}
    assert winner(outcomes, SPEEDS, "sharp") == "sharp"  # both keep the mean: perception wins
    outcomes["sharp"] = Outcome((0.2, -0.4), 6.0)  # its mean drops below bicubic
    assert winner(outcomes, SPEEDS, "sharp") == "clean"


def test_where_every_mean_is_below_bicubic_the_best_worst_photo_wins():
    outcomes = {"sharp": Outcome((0.1, -0.4), 6.0), "clean": Outcome((-0.2, -0.3), 1.0)}
    assert winner(outcomes, SPEEDS, "sharp") == "clean"


def test_the_table_is_built_from_the_outcomes_with_bands_halfway_between_qualities():
    conditions = [Condition("clean", "lossless"), Condition("jpeg-q90", "jpeg", 90),
                  Condition("jpeg-q50", "jpeg", 50), Condition("webp-q80", "webp"),
                  Condition("blur-q85", "jpeg", 85, routable=False)]
    good, bad = Outcome((1.0,), 5.0), Outcome((-1.0,), 0.0)
    results = {"clean": {"sharp": good, "clean": bad}, "jpeg-q90": {"sharp": good, "clean": bad},
               "jpeg-q50": {"sharp": bad, "clean": good}, "webp-q80": {"sharp": bad, "clean": good},
               "blur-q85": {"sharp": bad, "clean": good}}
    table = build_table({2: results}, conditions, SPEEDS, {2: "sharp"}, "run 1")
    assert table == RoutingTable({2: ScaleRoutes(
        "sharp", (Band(70, "sharp", "jpeg-q90"), Band(0, "clean", "jpeg-q50")),
        {"webp": "clean"})}, "run 1")
    # A blurred condition is not routed by its header, but its winner routes blurred pixels.
    conditions[-1] = Condition("blur-q85", "jpeg", 85, routable=False, blurry=True)
    table = build_table({2: results}, conditions, SPEEDS, {2: "sharp"}, "run 1")
    assert table.scales[2].blurry == "clean"
    assert table.scales[2].jpeg[0].model == "sharp", "the bands are what they were"
    # Where the blurred files' winner is what their header gets anyway, there is no route.
    results["blur-q85"] = {"sharp": good, "clean": bad}
    table = build_table({2: results}, conditions, SPEEDS, {2: "sharp"}, "run 1")
    assert table.scales[2].blurry is None


@pytest.mark.parametrize("quality", [30, 50, 75, 80, 90, 95])
@pytest.mark.parametrize("subsampling, named", [(0, "4:4:4"), (1, "4:2:2"), (2, "4:2:0")])
def test_the_header_reader_agrees_with_pillow(quality, subsampling, named):
    """read_facts parses the markers itself (the storefront's engine has no Pillow): the same
    tables, so the same quality estimate, and the same subsampling as Pillow reads."""
    from PIL import JpegImagePlugin

    data = encoded("JPEG", quality=quality, subsampling=subsampling)
    image = open_image(data)
    # the file's zigzag order; Pillow gives them in natural order
    assert {k: sorted(v) for k, v in jpeg_header(data)[0].items()} == \
        {k: sorted(v) for k, v in image.quantization.items()}
    assert read_facts(data) == Facts("JPEG", jpeg_quality(image.quantization), named)
    assert JpegImagePlugin.get_sampling(image) == subsampling
    assert abs(read_facts(data).quality - quality) <= 1


def test_the_header_reader_sees_past_metadata_and_stops_short_of_nothing():
    rng = np.random.default_rng(5)
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x010E] = "x" * 60000  # ImageDescription: a large APP1 segment before the tables
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
        out, "JPEG", quality=70, exif=exif.tobytes())
    data = out.getvalue()
    assert read_facts(data).quality == 70
    assert read_facts(data[:100]) == Facts("JPEG", None, None)  # cut inside the header
    assert read_facts(b"") == Facts()
    assert read_facts(b"\xff\xd8\xff\xdb\x00\x02") == Facts("JPEG", None, None)


def test_formats_are_sniffed_from_their_signatures():
    assert read_facts(encoded("PNG")) == Facts("PNG")
    assert read_facts(encoded("GIF")) == Facts("GIF")
    assert read_facts(encoded("BMP")) == Facts("BMP")
    assert read_facts(b"\x00\x00\x00\x1cftypavif" + bytes(20)).format == "AVIF"
    assert read_facts(b"not an image").kind == "lossless"
    gray = io.BytesIO()
    Image.new("L", (8, 8)).save(gray, "JPEG", quality=60)
    assert read_facts(gray.getvalue()) == Facts("JPEG", 60, None)


def natural(height: int, width: int, seed: int = 5) -> Image.Image:
    """A grey image with a photo's spectrum (amplitude falling as 1/frequency), random phase."""
    rng = np.random.default_rng(seed)
    frequency = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :])
    frequency[0, 0] = 1
    spectrum = np.exp(2j * np.pi * rng.random(frequency.shape)) / frequency
    pixels = np.fft.irfft2(spectrum, (height, width))
    pixels = (pixels - pixels.mean()) / pixels.std() * 40 + 128
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def saved(image: Image.Image, kind: str = "JPEG", **options) -> np.ndarray:
    """The pixels a user's file decodes to."""
    out = io.BytesIO()
    image.save(out, kind, **options)
    return np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))


def soft(image: Image.Image, sigma: float = 1) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(sigma))


@pytest.mark.parametrize("size", [(150, 150), (1200, 1600)])
def test_blur_reads_blurry_and_sharp_files_read_sharp_at_a_thumbnail_and_at_2_megapixels(size):
    image = natural(*size)
    for pixels in (np.asarray(image), saved(image, quality=90), saved(image, quality=75),
                   saved(image, "WEBP", quality=80)):
        assert sharpness(pixels) > BLURRY_BELOW + 0.5
    for pixels in (np.asarray(soft(image)), saved(soft(image), quality=85),
                   saved(soft(image, 1.5), quality=95)):
        assert sharpness(pixels) < BLURRY_BELOW - 0.05


def test_a_blocky_blurred_jpeg_reads_blurry_on_its_own_block_grid():
    # JPEG q30's block edges are steps: read across them (4 px off the grid), they pass for detail
    pixels = saved(soft(natural(152, 152)), quality=30)
    assert sharpness(pixels) < BLURRY_BELOW - 0.3
    assert sharpness(pixels[4:, 4:]) > BLURRY_BELOW


def test_luma_and_grey_rgb_agree_and_what_has_no_detail_reads_sharp():
    grey = np.asarray(natural(64, 80))
    assert sharpness(np.stack([grey] * 3, axis=-1)) == pytest.approx(sharpness(grey))
    assert sharpness(np.full((64, 64), 77, np.uint8)) > BLURRY_BELOW  # nothing to restore
    assert sharpness(np.zeros((7, 100, 3), np.uint8)) == math.inf  # not one 8x8 block


@pytest.mark.parametrize("name", ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                                  "motorcycle_left.png", "ihc.png", "hubble_deep_field.jpg",
                                  "retina.jpg"])
def test_the_bench_photos_read_sharp_as_files_and_blurry_when_blurred(photos, name):
    """The bench's real inputs (bench/realinputs.py): the 300 px centre crop halved."""
    image = Image.open(photos[name]).convert("RGB")
    left, top = (image.width - 300) // 2, (image.height - 300) // 2
    small = image.crop((left, top, left + 300, top + 300)).resize((150, 150),
                                                                   Image.Resampling.BICUBIC)
    for pixels in (np.asarray(small), saved(small, quality=90, subsampling="4:2:0"),
                   saved(small, quality=75, subsampling="4:2:0"),
                   saved(small, "WEBP", quality=80), saved(small, "AVIF", quality=60)):
        assert sharpness(pixels) > BLURRY_BELOW
    assert sharpness(saved(soft(small), quality=85, subsampling="4:2:0")) < BLURRY_BELOW


def test_a_blurred_picture_with_little_contrast_keeps_its_headers_model_at_x2():
    """routing.RESTORE_FROM_CONTRAST: at x2 the restore model loses to bicubic on blurred
    pictures whose luma varies by less than 16 levels (bench/restoretest.py); at x4 no floor."""
    image = soft(natural(150, 150))
    pixels = np.asarray(image, np.float64)
    faint = np.rint((pixels - pixels.mean()) * 10 / pixels.std() + 128).astype(np.uint8)
    assert contrast(faint) == pytest.approx(10, abs=0.2)
    assert contrast(faint) < RESTORE_FROM_CONTRAST[2]
    assert contrast(np.asarray(image)) > RESTORE_FROM_CONTRAST[2]
    assert sharpness(faint) < BLURRY_BELOW and sharpness(np.asarray(image)) < BLURRY_BELOW
    assert restore_reason(faint, 2) is None
    assert restore_reason(faint, 4).startswith("looks blurred")
    assert restore_reason(np.asarray(image), 2).startswith("looks blurred")
    table = RoutingTable({**TABLE.scales, 2: ScaleRoutes(
        "sharp-x2", TABLE.scales[2].jpeg, TABLE.scales[2].lossy, "restore-x2")}, "test")
    assert route_decoded(Facts("PNG"), 2, table, faint).model == "sharp-x2"
    assert route_decoded(Facts("PNG"), 2, table, np.asarray(image)).model == "restore-x2"


def test_contrast_samples_a_large_picture_and_reads_grey_and_rgb_alike():
    grey = np.asarray(natural(1200, 1600).convert("L"))
    rgb = np.stack([grey] * 3, axis=-1)
    assert contrast(rgb) == pytest.approx(contrast(grey))
    assert contrast(grey) == pytest.approx(float(grey.std()), rel=0.02)
    assert contrast(np.full((40, 40, 3), 200, np.uint8)) == 0


def faint_version(image: Image.Image, level: float) -> np.ndarray:
    """`image` with its luma's standard deviation brought to `level` about mid-grey."""
    pixels = np.asarray(image, np.float64)
    return np.rint((pixels - pixels.mean()) * level / pixels.std() + 128).astype(np.uint8)


@pytest.mark.parametrize("facts, scale, below", [
    (Facts("JPEG", 95), 2, PLAIN_BELOW_CONTRAST), (Facts("JPEG", 83), 2, PLAIN_BELOW_CONTRAST),
    (Facts("JPEG", 82), 2, None), (Facts("JPEG", 50), 2, None), (Facts("JPEG", None), 2, None),
    (Facts("PNG"), 2, None), (Facts("WEBP"), 2, None), (Facts(), 2, None),
    (Facts("JPEG", 90), 4, PLAIN_BELOW_CONTRAST), (Facts("JPEG", 30), 4, PLAIN_BELOW_CONTRAST),
    (Facts("WEBP"), 4, None), (Facts("JPEG", 95), 3, None)])
def test_only_jpegs_at_qualities_measured_to_lose_may_go_plain(facts, scale, below):
    """routing.PLAIN_FROM_QUALITY: every JPEG route loses to bicubic on faint files at x4, the
    q95 and q90 ones at x2, where q75 and q50 gain (bench/contrasttest.py); a lossless file
    gains everywhere."""
    assert PLAIN_FROM_QUALITY == {2: 83, 4: 0}
    assert plain_below(facts, scale) == below


def test_a_faint_light_jpeg_gets_bicubic_and_one_with_contrast_keeps_its_model():
    sharp = natural(150, 150)
    faint = faint_version(sharp, 10)
    assert plain_reason(faint, PLAIN_BELOW_CONTRAST).startswith("faint (contrast 10.")
    assert plain_reason(np.asarray(sharp), PLAIN_BELOW_CONTRAST) is None
    assert plain_reason(faint_version(sharp, 17), PLAIN_BELOW_CONTRAST) is None
    decided = route_decoded(Facts("JPEG", 95), 2, TABLE, faint)
    assert decided.model == PLAIN
    assert decided.why.startswith("JPEG, quality ≈ 95; faint (contrast")
    assert route_decoded(Facts("JPEG", 95), 2, TABLE, np.asarray(sharp)).model == "sharp-x2"
    assert route_decoded(Facts("JPEG", 75), 2, TABLE, faint).model == "clean1-x2"
    assert route_decoded(Facts("PNG"), 2, TABLE, faint).model == "sharp-x2"


def test_a_faint_blurred_light_jpeg_gets_bicubic_at_x2_and_the_restore_model_at_x4():
    """At x2 the restore floor keeps it off the restore model and the plain floor takes it; at
    x4 the restore model has no floor, and the blurry route is decided first."""
    faint = faint_version(soft(natural(150, 150)), 10)
    assert sharpness(faint) < BLURRY_BELOW
    table = RoutingTable({2: ScaleRoutes("sharp-x2", TABLE.scales[2].jpeg, {}, "restore-x2"),
                          4: ScaleRoutes("sharp-x4", TABLE.scales[4].jpeg, {}, "restore-x4")},
                         "test")
    assert route_decoded(Facts("JPEG", 85), 2, table, faint).model == PLAIN
    assert route_decoded(Facts("JPEG", 85), 4, table, faint).model == "restore-x4"
