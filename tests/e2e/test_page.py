"""The upscaler page (index.html) end to end: files in by every route, progress, cancel,
compare, downloads one by one and as a zip, per-file errors, persisted settings, layout;
the model picker by purpose, a model of the user's own, the JPEG noise suggestion."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ARTIFACTS, start_plain_server, start_server
from harness import photo_crop, png_bytes, psnr
from PIL import Image
from playwright.sync_api import expect

from sitebuild import assemble
from tests.corpus import hostile_inputs

READY_MS = 120_000
JOB_MS = 240_000
SHOTS = ARTIFACTS / "screenshots"
BICUBIC_DB = 24.0  # the model's output vs Pillow's bicubic enlargement: same picture, sharper

# Builds Files in the page from same-origin URLs and hands them over as a user would.
DROP = """async ({ files, how }) => {
  const dt = new DataTransfer();
  for (const f of files) {
    const bytes = await (await fetch(f.url)).arrayBuffer();
    dt.items.add(new File([bytes], f.name, { type: f.type }));
  }
  if (how === 'paste') {
    document.body.dispatchEvent(new ClipboardEvent('paste',
      { bubbles: true, cancelable: true, clipboardData: dt }));
    return;
  }
  const zone = document.querySelector('#drop');
  for (const kind of ['dragenter', 'dragover', 'drop']) {
    zone.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: dt }));
  }
}"""


def open_page(app, site):
    app.set_default_timeout(READY_MS)
    app.goto(f"{site}/index.html")
    expect(app.locator("#engine")).to_have_attribute("data-state", "ready", timeout=READY_MS)
    return app


def hand_over(app, files: dict[str, bytes], how: str = "drop") -> None:
    """Drop (or paste) files named as given; the bytes are served on our own origin."""
    payload = []
    for index, (name, data) in enumerate(files.items()):
        app.route(f"**/__files__/{index}", fulfil_with(data))
        payload.append({"url": f"__files__/{index}", "name": name, "type": mime(name)})
    app.evaluate(DROP, {"files": payload, "how": how})


def fulfil_with(data: bytes):
    return lambda route: route.fulfill(body=data, content_type="application/octet-stream")


def mime(name: str) -> str:
    return {".png": "image/png", ".jpg": "image/jpeg", ".avif": "image/avif",
            ".txt": "text/plain"}.get(
        Path(name).suffix, "application/octet-stream")


def item(app, name: str):
    return app.locator(".item", has=app.locator(".name", has_text=name))


def wait_state(app, name: str, state: str) -> None:
    expect(item(app, name)).to_have_attribute("data-state", state, timeout=JOB_MS)


def download(app, selector: str) -> tuple[str, bytes]:
    with app.expect_download(timeout=JOB_MS) as info:
        app.click(selector)
    got = info.value
    return got.suggested_filename, Path(got.path()).read_bytes()


def bicubic(image: np.ndarray, scale: int) -> np.ndarray:
    height, width = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((width * scale, height * scale),
                                                    Image.Resampling.BICUBIC))


def no_errors(console_log: list[str]) -> None:
    bad = [line for line in console_log if line.startswith(("[pageerror]", "[error]"))]
    assert not bad, bad


@pytest.fixture
def kitten(photos) -> np.ndarray:
    return photo_crop(photos, "chelsea.png", 96, 170, 70, height=64)


def test_dropped_file_is_upscaled_and_downloads_as_png(app, site, kitten, console_log):
    open_page(app, site)
    hand_over(app, {"kitten.png": png_bytes(kitten)})
    wait_state(app, "kitten.png", "done")
    expect(app.locator("#viewer-meta")).to_contain_text("96×64 → 192×128")
    name, data = download(app, "#download")
    assert name == "kitten@2x.png"
    out = Image.open(io.BytesIO(data))
    assert out.format == "PNG" and out.size == (192, 128)
    # written by Pillow in the worker: RGB, as the photo is opaque, and no metadata
    assert out.mode == "RGB" and not {"exif", "icc_profile"} & set(out.info)
    similarity = psnr(np.asarray(out.convert("RGB")), bicubic(kitten, 2))
    assert similarity >= BICUBIC_DB, similarity
    no_errors(console_log)


def test_paste_file_chooser_and_address_each_work(app, site, photos, console_log):
    open_page(app, site)
    crops = {name: png_bytes(photo_crop(photos, "coffee.png", 40, 60 * i, 90))
             for i, name in enumerate(["pasted.png", "chosen.png", "linked.png"])}
    hand_over(app, {"pasted.png": crops["pasted.png"]}, how="paste")
    with app.expect_file_chooser() as chooser:
        app.get_by_text("choose files").click()
    chooser.value.set_files({"name": "chosen.png", "mimeType": "image/png",
                             "buffer": crops["chosen.png"]})
    app.route("**/shop/linked.png", lambda route: route.fulfill(
        body=crops["linked.png"], content_type="image/png"))
    app.fill("#url", f"{site}/shop/linked.png")
    app.get_by_role("button", name="Add").click()
    for name in crops:
        wait_state(app, name, "done")
        expect(item(app, name).locator(".state")).to_contain_text("80×80")
    no_errors(console_log)


@pytest.fixture
def other_origin(tmp_path, kitten):
    """A second server that sends no CORS headers (like most image hosts)."""
    (tmp_path / "kitten.png").write_bytes(png_bytes(kitten))
    url, server = start_plain_server(tmp_path)
    yield url
    server.shutdown()


def test_cross_origin_image_without_cors_gets_a_clear_message(app, site, other_origin, kitten):
    open_page(app, site)
    app.fill("#url", f"{other_origin}/kitten.png")
    app.press("#url", "Enter")
    wait_state(app, "kitten.png", "error")
    state = item(app, "kitten.png")
    expect(state).to_have_attribute("data-error", "FetchError")
    expect(state.locator(".state")).to_contain_text("Could not load")
    expect(state.locator(".state")).to_contain_text("CORS")
    hand_over(app, {"after.png": png_bytes(kitten)})
    wait_state(app, "after.png", "done")


def test_three_files_batch_and_zip_download(app, site, photos, console_log):
    open_page(app, site)
    sizes = {"a.png": (40, 48), "b.png": (56, 32), "c photo.png": (32, 32)}
    app.set_input_files("#file", [
        {"name": name, "mimeType": "image/png",
         "buffer": png_bytes(photo_crop(photos, "rocket.jpg", w, 100, 100, height=h))}
        for name, (w, h) in sizes.items()])
    for name in sizes:
        wait_state(app, name, "done")
    # the queue marks the one photo the viewer shows, and follows a click to another
    expect(app.locator(".item.selected")).to_have_count(1)
    item(app, "a.png").locator(".name").click()
    expect(app.locator("#viewer-title")).to_have_text("a.png")
    expect(app.locator(".item.selected")).to_have_count(1)
    expect(item(app, "a.png")).to_have_class(re.compile(r"\bselected\b"))
    expect(app.locator("#download-all")).to_be_enabled()
    name, data = download(app, "#download-all")
    assert name == "upscaled.zip"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None, "every CRC matches"
        assert archive.namelist() == ["a@2x.png", "b@2x.png", "c photo@2x.png"]
        for original, (w, h) in sizes.items():
            entry = original.replace(".png", "@2x.png")
            with Image.open(io.BytesIO(archive.read(entry))) as image:
                assert image.size == (2 * w, 2 * h), entry
    no_errors(console_log)


def test_cancel_stops_the_run_and_the_next_upscale_works(app, site, photos, kitten,
                                                         record_property):
    open_page(app, site)
    hand_over(app, {"big.png": png_bytes(photo_crop(photos, "astronaut.png", 320, 100, 0))})
    app.wait_for_function("() => document.querySelector('#progress').value >= 1", timeout=JOB_MS)
    started = app.evaluate("performance.now()")
    app.click("#cancel")
    wait_state(app, "big.png", "cancelled")
    record_property("cancel_ms", app.evaluate("performance.now()") - started)
    assert app.locator("#progress").evaluate("p => p.value < p.max"), "stopped before the end"
    expect(item(app, "big.png").get_by_role("button", name="Retry big.png")).to_be_visible()
    hand_over(app, {"next.png": png_bytes(kitten)})
    wait_state(app, "next.png", "done")


def test_names_from_addresses_become_safe_file_names(app, site, kitten, console_log):
    """Folders, NUL and a malformed % escape in an address: the zip gets plain base names,
    and the page throws nothing."""
    open_page(app, site)
    data = png_bytes(kitten)
    for path in ("..%2F..%2Fevil%00.png", "bad%E0%A4%A.png", "C:%5Cboot%5Cnul.png"):
        app.route(f"**/addresses/{path}", lambda route: route.fulfill(
            body=data, content_type="image/png"))
        app.fill("#url", f"{site}/addresses/{path}")
        app.press("#url", "Enter")
    names = ["evil_.png", "bad%E0%A4%A.png", "_nul.png"]
    for name in names:
        wait_state(app, name, "done")
    _, zipped = download(app, "#download-all")
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        assert archive.namelist() == [name.replace(".png", "@2x.png") for name in names]
    no_errors(console_log)


@pytest.fixture
def big_file_site(tmp_path):
    """A server with the site's headers (CORS) and a 101 MB file it announces as such."""
    with (tmp_path / "huge.png").open("wb") as handle:
        handle.truncate(101 * 2**20)  # sparse: nothing is written
    url, server = start_server(tmp_path)
    yield url
    server.shutdown()


def test_an_address_that_never_answers_can_be_cancelled_and_a_huge_one_is_refused(
        app, site, kitten, big_file_site, allowed_origins, console_log):
    allowed_origins.add(big_file_site)  # the one other origin this page may reach
    open_page(app, site)
    app.route("**/addresses/silent.png", lambda route: None)  # never answered
    app.fill("#url", f"{site}/addresses/silent.png")
    app.press("#url", "Enter")
    expect(item(app, "silent.png")).to_have_attribute("data-state", "running")
    app.click("#cancel")
    wait_state(app, "silent.png", "cancelled")
    app.fill("#url", f"{big_file_site}/huge.png")
    app.press("#url", "Enter")
    wait_state(app, "huge.png", "error")
    expect(item(app, "huge.png").locator(".state")).to_contain_text("larger than 100 MB")
    hand_over(app, {"after.png": png_bytes(kitten)})
    wait_state(app, "after.png", "done")
    no_errors(console_log)


def test_removed_photos_come_back_with_undo_and_unsaved_results_ask_before_closing(
        app, site, kitten):
    open_page(app, site)
    hand_over(app, {"one.png": png_bytes(kitten), "two.png": png_bytes(kitten[:32])})
    wait_state(app, "one.png", "done")
    wait_state(app, "two.png", "done")
    app.get_by_role("button", name="Remove one.png").click()
    expect(item(app, "one.png")).to_have_count(0)
    expect(app.locator("#undo")).to_contain_text("Removed one.png.")
    app.get_by_role("button", name="Undo").click()
    expect(app.locator(".item .name")).to_have_text(["one.png", "two.png"])
    expect(app.locator("#undo")).to_be_hidden()
    app.click("#clear")
    expect(app.locator(".item")).to_have_count(0)
    expect(app.locator("#undo")).to_contain_text("Removed 2 photos.")
    app.get_by_role("button", name="Undo").click()
    expect(app.locator(".item .name")).to_have_text(["one.png", "two.png"])
    name, _ = download(app, "#download")  # the result in view is saved; the other is not yet
    dialogs = []
    app.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
    app.close(run_before_unload=True)
    app.wait_for_timeout(500)
    assert dialogs == ["beforeunload"], (name, dialogs)


def test_an_animation_and_a_colour_profile_are_named_in_the_queue(app, site, console_log):
    open_page(app, site)
    corpus = hostile_inputs()
    hand_over(app, {"moving.gif": corpus["animated GIF"].data,
                    "linear.png": corpus["ICC linear-RGB PNG"].data})
    wait_state(app, "moving.gif", "done")
    wait_state(app, "linear.png", "done")
    expect(item(app, "moving.gif").locator(".note")).to_contain_text(
        "Animated (3 frames): only the first frame is upscaled.")
    expect(item(app, "linear.png").locator(".note")).to_contain_text(
        "Converted from its colour profile (Linear RGB (test)) to sRGB.")
    no_errors(console_log)


def test_bad_files_each_get_their_own_message(app, site, kitten, console_log):
    open_page(app, site)
    whole = png_bytes(kitten)
    tiff = io.BytesIO()
    Image.fromarray(kitten).save(tiff, format="TIFF")
    huge = io.BytesIO()  # 4100 x 4100: over the 4096 x 4096 input limit, yet a small file
    Image.new("RGB", (4100, 4100), "white").save(huge, format="PNG")
    hand_over(app, {
        "notes.png": b"shopping list: milk, eggs, coffee\n" * 20,
        "cut.png": whole[: len(whole) // 2],
        "empty.png": b"",
        "scan.tif": tiff.getvalue(),
        "poster.png": huge.getvalue(),
        "fine.png": whole,
    })
    expected = {
        "notes.png": ("NotAnImage", "Not an image: Not an image this page can read"),
        "cut.png": ("CorruptImage", "Damaged file: The PNG file is damaged or truncated"),
        "empty.png": ("EmptyFile", "Empty file: The file is empty (0 bytes)."),
        "scan.tif": ("UnsupportedFormat", "Unsupported format: TIFF images are not supported"),
        "poster.png": ("ImageTooLarge", "4100x4100 = 16,810,000 pixels; the limit is 16,777,216"),
    }
    for name, (code, text) in expected.items():
        wait_state(app, name, "error")
        expect(item(app, name)).to_have_attribute("data-error", code)
        expect(item(app, name).locator(".state")).to_contain_text(text)
    wait_state(app, "fine.png", "done")
    no_errors(console_log)


def test_model_and_format_persist_across_visits(app, site, kitten):
    open_page(app, site)
    app.select_option("#model", "esrgan-slim-x3")
    app.select_option("#format", "image/webp")
    app.fill("#quality", "80")
    expect(app.locator("#engine")).to_contain_text("ESRGAN slim ×3", timeout=READY_MS)
    app.reload()
    open_page(app, site)
    expect(app.locator("#model")).to_have_value("esrgan-slim-x3")
    expect(app.locator("#format")).to_have_value("image/webp")
    expect(app.locator("#quality")).to_have_value("80")
    expect(app.locator("#engine")).to_contain_text("ESRGAN slim ×3")
    hand_over(app, {"kitten.png": png_bytes(kitten)})
    wait_state(app, "kitten.png", "done")
    name, data = download(app, "#download")
    assert name == "kitten@3x.webp"
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == ("WEBP", (288, 192))


def test_controls_are_labelled_and_the_viewer_answers_keys(app, site, kitten):
    open_page(app, site)
    unlabelled = app.evaluate("""() => [...document.querySelectorAll('button, input, select')]
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                        && !el.textContent.trim())
        .map((el) => el.outerHTML)""")
    assert not unlabelled, unlabelled
    app.focus("#file")
    reached = []
    for _ in range(6):
        app.keyboard.press("Tab")
        reached.append(app.evaluate("document.activeElement.id"))
    assert {"url", "model", "format"} <= set(reached), reached
    hand_over(app, {"kitten.png": png_bytes(kitten)})
    wait_state(app, "kitten.png", "done")
    app.focus("#compare")
    app.keyboard.press("+")
    expect(app.locator("#zoom-level")).not_to_have_text("fit")
    app.keyboard.press("0")
    expect(app.locator("#zoom-level")).to_have_text("fit")
    app.fill("#split", "20")
    clip = app.evaluate("getComputedStyle(document.querySelector('.layer.after')).clipPath")
    assert "20%" in clip, clip


VIEWPORTS = [("desktop", 1280, 860), ("phone", 360, 740)]


@pytest.mark.parametrize(("label", "width", "height"), VIEWPORTS)
def test_screenshots_idle_running_and_compare(app, site, photos, label, width, height):
    """Artifacts for a person to look at, plus what a machine can check: no sideways scroll."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    app.set_viewport_size({"width": width, "height": height})
    open_page(app, site)
    app.screenshot(path=str(SHOTS / f"{label}-idle.png"), full_page=True)
    hand_over(app, {"astronaut.png": png_bytes(photo_crop(photos, "astronaut.png", 300, 100, 0))})
    app.wait_for_function("() => document.querySelector('#progress').value >= 3", timeout=JOB_MS)
    app.screenshot(path=str(SHOTS / f"{label}-running.png"), full_page=True)
    wait_state(app, "astronaut.png", "done")
    app.screenshot(path=str(SHOTS / f"{label}-compare.png"), full_page=True)
    overflow = app.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {width}px wide"


# ---------- choosing a model ----------

PURPOSE_GROUPS = ["Automatic", "Sharpest (photos)", "Fastest", "For JPEG noise",
                  "Blurry or noisy photos",
                  "For illustrations", "Most detail (needs a GPU)", "Older models"]
SPEED_HINT = ("About 4 s per megapixel on a computer without a GPU "
              "(measured on 2 CPU cores).")


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 1e7 else f"{size / 1e6:.0f} MB"


def test_model_picker_groups_by_purpose_with_size_and_speed(app, site, dist_dir):
    catalogue = json.loads((dist_dir / assemble.hashed_path("web") / "models.json").read_text())
    by_id = {entry["id"]: entry for entry in catalogue}
    for entry in catalogue:  # one measured model, one not: both hints are checked
        entry.pop("msPerMegapixel", None)
    by_id["span-x2"]["msPerMegapixel"] = 4200
    app.route("**/models.json", lambda route: route.fulfill(
        body=json.dumps(catalogue), content_type="application/json"))
    open_page(app, site)
    groups = app.eval_on_selector_all("#model optgroup", """groups => groups.map((g) =>
        [g.label, [...g.querySelectorAll('option')].map((o) => o.value)])""")
    assert [label for label, _ in groups] == PURPOSE_GROUPS
    members = dict(groups)
    for label, model in [("Sharpest (photos)", "span-x2"), ("Fastest", "esrgan-slim-x2"),
                         ("For JPEG noise", "waifu2x-photo-x2-denoise2"),
                         ("Blurry or noisy photos", "realesr-general-x2"),
                         ("For illustrations", "realesrgan-anime-x3"),
                         ("Most detail (needs a GPU)", "realesrgan-x4plus"),
                         ("Older models", "esrgan-thick-x4")]:
        assert model in members[label], (label, members[label])
    assert members["Automatic"] == ["auto", "auto-x4"]
    assert sorted(sum(members.values(), [])) == sorted([*by_id, "auto", "auto-x4"])

    expect(app.locator("#model")).to_have_value("auto")  # the default
    expect(app.locator("#model-hint")).to_contain_text("Chooses per photo")
    expect(app.locator("#engine")).to_contain_text("Ready: Automatic ×2", timeout=READY_MS)
    span = by_id["span-x2"]
    app.select_option("#model", "span-x2")
    expect(app.locator("#model-hint")).to_have_text(
        f"{span['hint']} Download {megabytes(span['weightBytes'])}. {SPEED_HINT}")
    anime = by_id["realesrgan-anime-x2"]
    app.select_option("#model", "realesrgan-anime-x2")
    expect(app.locator("#model-hint")).to_have_text(
        f"{anime['hint']} Download {megabytes(anime['weightBytes'])}.")
    expect(app.locator("#engine")).to_contain_text(f"Ready: {anime['label']}", timeout=READY_MS)

    app.evaluate("localStorage.setItem('upscale:settings', JSON.stringify({ model: 'gone-x9' }))")
    app.reload()
    open_page(app, site)
    expect(app.locator("#model")).to_have_value("auto")


# ---------- a model of the user's own ----------

OWN_NO_BIN = ("mystery.param came without its weights: choose or drop its .bin file "
              "together with it.")
OWN_REFUSED = ("mystery could not be used: layer type Mystery ({layer}) is not supported: "
               "Upscale refuses it rather than run it wrongly. "
               "Still using Automatic ×2: the best model for each photo.")
SPAN_X4_BICUBIC_DB = 24.0  # SPAN x4 vs Pillow's bicubic x4: the same picture, sharper


def test_own_model_pair_is_used_and_kept_for_the_session(app, site, ncnn_files, kitten,
                                                         console_log):
    param, weights = ncnn_files["spanx4_ch48"]
    open_page(app, site)
    app.set_input_files("#own-model", [str(param), str(weights)])
    expect(app.locator("#model")).to_have_value("custom:spanx4_ch48")
    expect(app.locator("#model option:checked")).to_have_text("Your model: spanx4_ch48 (×4)")
    expect(app.locator("#engine")).to_have_attribute("data-state", "ready")
    expect(app.locator("#engine")).to_contain_text("Ready: Your model: spanx4_ch48 (×4)")

    hand_over(app, {"kitten.png": png_bytes(kitten)})
    wait_state(app, "kitten.png", "done")
    expect(app.locator("#viewer-meta")).to_contain_text("96×64 → 384×256 · Your model")
    name, data = download(app, "#download")
    assert name == "kitten@4x.png"
    out = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert out.shape == (256, 384, 3)
    similarity = psnr(out, bicubic(kitten, 4))
    assert similarity >= SPAN_X4_BICUBIC_DB, similarity

    app.reload()  # the same tab: the brought model comes back, chosen and loaded
    open_page(app, site)
    expect(app.locator("#model")).to_have_value("custom:spanx4_ch48")
    expect(app.locator("#engine")).to_contain_text("Ready: Your model: spanx4_ch48 (×4)",
                                                   timeout=READY_MS)

    fresh = app.context.new_page()  # a new tab is a new session: it starts clean
    fresh.set_default_timeout(READY_MS)
    fresh.goto(f"{site}/index.html")
    expect(fresh.locator("#engine")).to_have_attribute("data-state", "ready", timeout=READY_MS)
    expect(fresh.locator("#model")).to_have_value("auto")
    expect(fresh.locator("#model option[value^='custom:']")).to_have_count(0)
    fresh.close()
    no_errors(console_log)


def test_own_model_with_an_unknown_layer_is_refused_and_the_old_model_stays(
        app, site, ncnn_files, kitten):
    param, weights = ncnn_files["spanx2_ch48"]
    text = param.read_text()
    swish = re.search(r"^Swish\s+(\S+)", text, flags=re.M)
    broken = (text[:swish.start()] + "Mystery" + text[swish.start() + len("Swish"):]).encode()
    open_page(app, site)
    expect(app.locator("#model")).to_have_value("auto")

    app.set_input_files("#own-model", [{"name": "mystery.param", "mimeType": "text/plain",
                                        "buffer": broken}])
    expect(app.locator("#engine-text")).to_have_text(OWN_NO_BIN)

    hand_over(app, {"mystery.param": broken, "mystery.bin": weights.read_bytes()})  # dropped
    expect(app.locator("#engine-text")).to_have_text(OWN_REFUSED.format(layer=swish[1]),
                                                     timeout=READY_MS)
    expect(app.locator("#engine")).to_have_attribute("data-state", "error")
    expect(app.locator("#model")).to_have_value("auto")
    expect(app.locator("#model option[value^='custom:']")).to_have_count(0)
    expect(app.locator(".item")).to_have_count(0)  # the pair never joined the image queue

    hand_over(app, {"kitten.png": png_bytes(kitten)})
    wait_state(app, "kitten.png", "done")
    expect(app.locator("#viewer-meta")).to_contain_text("96×64 → 192×128 · SPAN ×2")


# ---------- `auto`: each photo its model ----------


def test_auto_runs_each_photo_with_its_model_and_the_queue_says_which_and_why(
        app, site, photos, console_log):
    from upscale.routing import RoutingTable, read_facts, route

    table = RoutingTable.from_json(json.loads(assemble.ROUTING.read_text()))
    labels = {m["id"]: m["label"] for m in assemble.built_catalogue()}
    crop = Image.fromarray(photo_crop(photos, "chelsea.png", 96, 150, 60, height=64))
    files = {}
    for name, kind, options in (("cat.png", "PNG", {}), ("cat.jpg", "JPEG", {"quality": 60}),
                                ("cat.avif", "AVIF", {"quality": 60})):
        out = io.BytesIO()
        crop.save(out, kind, **options)
        files[name] = out.getvalue()
    # the cat faint (its luma's variation cut to 8 levels), saved at q95: bicubic, no model
    pixels = np.asarray(crop, np.float64)
    faint = Image.fromarray(np.rint((pixels - pixels.mean()) * 8 / pixels.std() + 128)
                            .astype(np.uint8))
    out = io.BytesIO()
    faint.save(out, "JPEG", quality=95)
    open_page(app, site)
    hand_over(app, {**files, "faint.jpg": out.getvalue()})
    for name, data in files.items():
        wait_state(app, name, "done")
        chosen = route(read_facts(data), 2, table)
        expect(item(app, name).locator(".ran")).to_have_text(
            f"{labels[chosen.model]} ({chosen.why})")
    expect(item(app, "cat.jpg").locator(".ran")).to_contain_text("JPEG, quality ≈ 60, 4:2:0")
    expect(item(app, "cat.avif").locator(".state")).to_contain_text("×2 · 192×128")
    wait_state(app, "faint.jpg", "done")
    expect(item(app, "faint.jpg").locator(".ran")).to_have_text(re.compile(
        r"^Bicubic ×2, no model \(JPEG, quality ≈ 95, 4:2:0; faint \(contrast [\d.]+, under 16\): "
        r"every model measured enlarges such a file worse than bicubic\)$"))

    # a blurry photo: one click runs it again with the model for blur and noise
    restore = next(m for m in assemble.built_catalogue()
                   if m["purpose"] == "restore" and m["scale"] == 2)
    item(app, "cat.jpg").get_by_role("button", name=re.compile("^Restore cat.jpg")).click()
    expect(app.locator("#model")).to_have_value(restore["id"])
    expect(app.locator("#viewer-meta")).to_contain_text(f"96×64 → 192×128 · {restore['label']}",
                                                        timeout=JOB_MS)
    wait_state(app, "cat.jpg", "done")
    expect(item(app, "cat.jpg").get_by_role("button", name=re.compile("^Restore"))).to_have_count(0)
    no_errors(console_log)


# ---------- JPEG noise ----------

JPEG_NOTE = re.compile(r"^Compressed JPEG \(quality ≈ (\d+)\): waifu2x with noise removal "
                       r"level 3 cleans its blocks\.$")


def test_compressed_jpeg_suggests_noise_removal_and_reruns_with_it(app, site, photos,
                                                                  console_log):
    clean = photo_crop(photos, "coffee.png", 96, 200, 120, height=64)
    encoded = io.BytesIO()
    Image.fromarray(clean).save(encoded, format="JPEG", quality=30)
    open_page(app, site)
    app.select_option("#model", "span-x2")  # chosen by hand: `auto` would clean it itself
    hand_over(app, {"blocky.jpg": encoded.getvalue()})
    entry = item(app, "blocky.jpg")
    note = entry.locator(".note")
    expect(note.locator("span")).to_have_text(JPEG_NOTE, timeout=JOB_MS)
    quality = int(JPEG_NOTE.match(note.locator("span").inner_text())[1])
    assert abs(quality - 30) <= 2, quality
    wait_state(app, "blocky.jpg", "done")
    expect(app.locator("#viewer-meta")).to_contain_text("SPAN ×2")
    expect(note).to_be_visible()  # SPAN ran it: the suggestion stays
    _, sharpened = download(app, "#download")

    note.get_by_role("button", name="Use it").click()
    expect(app.locator("#model")).to_have_value("waifu2x-photo-x2-denoise3")
    label = "waifu2x photo ×2, JPEG noise removal 3"
    expect(app.locator("#viewer-meta")).to_contain_text(f"96×64 → 192×128 · {label}",
                                                        timeout=JOB_MS)
    wait_state(app, "blocky.jpg", "done")
    expect(app.locator("#engine")).to_contain_text(f"Ready: {label}")
    expect(note).to_be_hidden()
    _, cleaned = download(app, "#download")
    reference = bicubic(clean, 2)  # the uncompressed crop, enlarged
    scores = [psnr(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), reference)
              for data in (sharpened, cleaned)]
    print("PSNR vs the clean crop's bicubic: SPAN", scores[0], "waifu2x denoise 3", scores[1])
    assert scores[1] > scores[0], scores
    no_errors(console_log)


def test_the_job_queue_runs_one_job_at_a_time_and_undoes_a_removal_in_place(app, site):
    """web/jobs.js on its own, with a fake run: what the page's buttons ask of a job."""
    got = app.evaluate("""async (web) => {
        const { JobQueue } = await import(`./${web}/jobs.js`);
        const runs = [];
        const queue = new JobQueue({
            canRun: () => true,
            changed: () => {},
            run: (job) => new Promise((resolve) => {
                const signal = job.start({ scale: 2 });
                runs.push(job.name);
                signal.addEventListener('abort', () => {
                    job.fail(new DOMException('stopped', 'AbortError'));
                    job.settle();
                    resolve();
                });
            }),
        });
        const jobs = ['a', 'b', 'c', 'd', 'e'].map((name) => queue.add({ name }));
        queue.pump();
        queue.pump();
        const names = () => queue.jobs.map((job) => job.name).join('');
        const seen = { running: queue.running.name, runs: runs.join('') };
        jobs[0].runAgain(); // a running job stops, and comes back to the queue
        await new Promise((resolve) => setTimeout(resolve, 0));
        seen.rerun = [jobs[0].state, runs.join('')];
        queue.remove([jobs[1], jobs[3], jobs[4]]);
        seen.removed = names();
        queue.undo();
        seen.undone = names();
        let closed = 0;
        jobs[2].succeed({ close: () => { closed += 1; } }, 5);
        let expired = false;
        queue.remove([jobs[2]], () => { expired = true; });
        queue.finishRemoval();
        seen.released = { closed, expired, result: jobs[2].result };
        seen.again = jobs[1].runAgain() ? 'queued now' : 'not now';
        jobs[4].fail(Object.assign(new Error('gone'), { name: 'WorkerCrashed' }));
        jobs[3].fail(Object.assign(new Error('bad file'), { name: 'InvalidImage' }));
        seen.retryable = [jobs[4].retryable, jobs[3].retryable];
        return seen;
    }""", assemble.hashed_path("web"))
    assert got["running"] == "a" and got["runs"] == "a", got  # the second pump waited
    assert got["rerun"] == ["running", "aa"], got  # cancelled to run again: it ran again at once
    assert (got["removed"], got["undone"]) == ("ac", "abcde"), got
    assert got["released"] == {"closed": 1, "expired": True, "result": None}, got
    assert got["again"] == "not now", got  # b is still queued: nothing to do
    assert got["retryable"] == [True, False], got
