"""Python's memory snapshot (web/pysnapshot.js): a returning engine restores Python instead of
starting it, paints exactly what a fresh one paints, and any bad entry means a fresh start
with nothing shown to the user."""

from __future__ import annotations

import pytest
from harness import BOOT_TIMEOUT_MS, serve_bytes

from sitebuild import common, models

MANIFESTS = {m["id"]: m for m in models.load_manifests()}
GOLDEN = next(m for m in MANIFESTS.values() if "reference" in m)

# In-page: one engine started, one job (a PNG, so Pillow is loaded too), the Python snapshot
# it keeps awaited, the engine disposed. Returns what it started from and the result's bytes.
ONE_ENGINE = """async ({ model, src, waitForSnapshot }) => {
  const { Upscaler } = await import('./upscale.js');
  const up = new Upscaler({ model, backend: 'wasm' });
  const info = await up.ready;
  // before the job, after which a fresh engine keeps a snapshot of its own
  const entriesAtReady = (await (await caches.open('upscale-python')).keys()).length;
  const out = await up.upscale(await (await fetch(src)).blob());
  const rgba = new Uint8Array(out.data.buffer);
  const digest = await crypto.subtle.digest('SHA-256', rgba);
  let kept = null;
  for (let i = 0; waitForSnapshot && !kept && i < 300; i++) {
    kept = (await up.memory()).pythonSnapshot;
    if (!kept) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  up.dispose();
  return {
    python: info.python, reason: info.reason, kept, entriesAtReady,
    width: out.width, height: out.height,
    sha256: Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0'))
      .join(''),
  };
}"""

# In-page: the one kept entry, changed by `how` and put back in its place.
SPOIL = """async (how) => {
  const cache = await caches.open('upscale-python');
  const [request] = await cache.keys();
  const packed = new Uint8Array(await (await cache.match(request)).arrayBuffer());
  const unpack = async (bytes) => new Uint8Array(await new Response(
    new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).arrayBuffer());
  const pack = async (bytes) => new Uint8Array(await new Response(
    new Blob([bytes]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer());
  let spoilt;
  if (how === 'corrupt') {
    spoilt = packed.slice();
    for (let i = 0; i < 64; i++) spoilt[(spoilt.length >> 1) + i] ^= 0x5a;
  } else if (how === 'truncated') {
    spoilt = packed.slice(0, packed.length >> 1);
  } else if (how === 'foreign') {
    // Another build of Pyodide: its build id, inside Pyodide's own snapshot header, differs.
    const bytes = await unpack(packed);
    const json = new DataView(bytes.buffer).getUint32(8, true);
    const heap = Math.ceil((16 + json) / 8) * 8;
    for (let i = 16; i < 48; i++) bytes[heap + i] ^= 0xff;
    spoilt = await pack(bytes);
  } else if (how === 'wrong heap') {
    // A well-formed entry whose heap is not what it says (another engine's memory, damaged
    // storage that gzip could not see): Python's state is garbage, the self-check must say so.
    const bytes = await unpack(packed);
    const json = new DataView(bytes.buffer).getUint32(8, true);
    const heap = Math.ceil((16 + json) / 8) * 8 + 48;
    for (let i = heap + (1 << 20); i < bytes.length; i += 4099) bytes[i] ^= 0xa5;
    spoilt = await pack(bytes);
  }
  await cache.put(request, new Response(spoilt));
  return request.url;
}"""

def golden_input(page) -> str:
    fixture = (common.NODE_MODULES / GOLDEN["package"] / GOLDEN["reference"]["fixture"])
    return serve_bytes(page, "snapshot-fixture.png", fixture.read_bytes())


def one_engine(page, src: str, wait_for_snapshot: bool = False) -> dict:
    page.set_default_timeout(BOOT_TIMEOUT_MS * 2)
    return page.evaluate(ONE_ENGINE, {"model": GOLDEN["id"], "src": src,
                                      "waitForSnapshot": wait_for_snapshot})


ERROR_LINES = ("[error]", "[worker error]", "[pageerror]")


def errors_in(console: list[str]) -> list[str]:
    return [line for line in console if line.startswith(ERROR_LINES)]


def test_a_restored_engine_paints_byte_for_byte_what_a_fresh_one_paints(app, console_log):
    src = golden_input(app)
    fresh = one_engine(app, src, wait_for_snapshot=True)
    assert fresh["python"] == {"from": "fresh", "note": None}
    assert fresh["kept"], "the first engine keeps a Python snapshot after its first job"
    assert 0 < fresh["kept"]["bytes"] < fresh["kept"]["heapBytes"]
    # the job's freed buffers were zeroed before the copy (PySnapshot.scrub): whole blocks
    assert 0 < fresh["kept"]["zeroedBytes"] < fresh["kept"]["heapBytes"]
    assert fresh["kept"]["zeroedBytes"] % 256 == 0
    restored = one_engine(app, src)
    assert restored["python"] == {"from": "snapshot", "note": None}
    assert restored["entriesAtReady"] == 1
    assert (restored["width"], restored["height"]) == (fresh["width"], fresh["height"])
    assert restored["sha256"] == fresh["sha256"]
    assert not errors_in(console_log), errors_in(console_log)


@pytest.mark.parametrize("how", ["corrupt", "truncated", "foreign", "wrong heap"])
def test_a_bad_snapshot_means_a_fresh_start_and_no_error(app, console_log, how):
    src = golden_input(app)
    fresh = one_engine(app, src, wait_for_snapshot=True)
    assert fresh["kept"]
    app.evaluate(SPOIL, how)
    # The engine that finds it: a fresh start, said in info, the same picture, no error.
    after = one_engine(app, src)
    assert after["python"]["from"] == "fresh", after["python"]
    note = after["python"]["note"]
    assert note and note.startswith("the saved Python could not be used ("), note
    assert note in after["reason"]
    assert after["sha256"] == fresh["sha256"]
    assert after["entriesAtReady"] == 0, "the bad entry is deleted"
    assert not errors_in(console_log), errors_in(console_log)


def restored_without_a_note(console: list[str]) -> bool:
    return not any("the saved Python could not be used" in line for line in console)


def test_a_restored_engine_passes_the_hostile_corpus(app, console_log, record_property):
    import test_hostile

    fresh = one_engine(app, golden_input(app), wait_for_snapshot=True)
    assert fresh["kept"]
    test_hostile.test_each_hostile_input_gets_a_result_or_its_error_then_the_next_works(
        app, record_property)
    assert restored_without_a_note(console_log), console_log


def test_a_restored_engine_survives_a_worker_crash(app, console_log):
    """The restarted worker restores the snapshot too, and the next job runs there."""
    import test_hostile

    fresh = one_engine(app, golden_input(app), wait_for_snapshot=True)
    assert fresh["kept"]
    test_hostile.test_a_worker_that_dies_rejects_what_is_pending_and_the_next_call_starts_afresh(
        app)
    assert restored_without_a_note(console_log), console_log
    restored = one_engine(app, golden_input(app))
    assert restored["python"] == {"from": "snapshot", "note": None}
    assert restored["sha256"] == fresh["sha256"]
