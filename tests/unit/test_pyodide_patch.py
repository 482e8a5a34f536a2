"""The snapshot patch of pyodide.asm.js: each replacement applies exactly once, to exactly the
pinned Pyodide, and the build serves the patched file."""

import pytest

from sitebuild import common, pyodide_patch
from sitebuild.common import BuildError
from sitebuild.pyodide_patch import NOT_ONCE, REPLACEMENTS, patched


def pinned_text() -> str:
    path = common.PYODIDE_DIR / pyodide_patch.PATCHED
    if not path.is_file():
        pytest.fail("node_modules/pyodide is missing; run `python build.py test`")
    return path.read_text()


def test_every_replacement_applies_once_to_the_pinned_pyodide():
    text = pinned_text()
    for replacement in REPLACEMENTS:
        assert text.count(replacement.old) == 1, replacement.name
    out = patched(text)
    for replacement in REPLACEMENTS:
        assert out.count(replacement.new) == 1, replacement.name
        assert replacement.old not in out.replace(replacement.new, ""), replacement.name
    assert len(out) == len(text) + sum(len(r.new) - len(r.old) for r in REPLACEMENTS)


@pytest.mark.parametrize("replacement", REPLACEMENTS, ids=lambda r: r.name)
def test_a_missing_marker_fails_naming_the_replacement(replacement):
    text = pinned_text().replace(replacement.old, "")
    with pytest.raises(BuildError) as error:
        patched(text)
    assert str(error.value) == NOT_ONCE.format(file="pyodide.asm.js", name=replacement.name,
                                               count=0)


@pytest.mark.parametrize("replacement", REPLACEMENTS, ids=lambda r: r.name)
def test_a_doubled_marker_fails_naming_the_replacement(replacement):
    text = pinned_text() + "\n" + replacement.old
    with pytest.raises(BuildError) as error:
        patched(text)
    assert str(error.value) == NOT_ONCE.format(file="pyodide.asm.js", name=replacement.name,
                                               count=2)


def test_patching_twice_fails():
    with pytest.raises(BuildError, match="library placement"):
        patched(patched(pinned_text()))


def test_the_built_pyodide_is_the_patched_one():
    """dist/ serves the patched pyodide.asm.js (the test command builds first)."""
    from sitebuild.assemble import hashed_path

    served = (common.DIST / hashed_path("vendor/pyodide") / pyodide_patch.PATCHED).read_text()
    assert served == patched(pinned_text())
