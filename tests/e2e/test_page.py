"""The upscaler page (index.html) end to end: files in by every route, progress, cancel,
compare, downloads one by one and as a zip, per-file errors, persisted settings, layout."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ARTIFACTS, start_plain_server
from harness import photo_crop, png_bytes, psnr
from PIL import Image
from playwright.sync_api import expect

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
    return {".png": "image/png", ".jpg": "image/jpeg", ".txt": "text/plain"}.get(
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
        "poster.png": ("ImageTooLarge", "the limit on this device is 16,777,216 pixels"),
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
