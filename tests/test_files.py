"""regsim.files: a file is replaced whole or not at all, and no temporary file is ever left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from regsim.files import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text

OLD = b"old content\n" * 1000


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def old(tmp_path: Path) -> Path:
    path = tmp_path / "figure.png"
    path.write_bytes(OLD)
    return path


def test_the_file_is_replaced_whole_not_rewritten_in_place(old):
    """A reader that opened the old file keeps reading the whole old file (a rename swaps the
    directory entry); writing in place would hand it a mix of old and new bytes."""
    new = bytes(range(256)) * 4000  # larger than the old file, and different everywhere
    with open(old, "rb") as reader:
        head = reader.read(100)
        atomic_write_bytes(old, new)
        rest = reader.read()
    assert head + rest == OLD
    assert old.read_bytes() == new
    assert listing(old.parent) == ["figure.png"]


def test_a_writer_that_raises_leaves_the_old_file_and_no_temp(old):
    seen = []
    with pytest.raises(RuntimeError, match="cancelled"):
        with atomic_path(old) as tmp:
            seen.append(tmp)
            tmp.write_bytes(b"half a fi")  # a writer dies midway
            raise RuntimeError("cancelled")
    assert old.read_bytes() == OLD
    assert listing(old.parent) == ["figure.png"]
    # The temporary name was in the same folder (a rename across file systems is not atomic) and
    # kept the suffix (Pillow and QImage.save choose the format by it).
    assert seen[0].parent == old.parent and seen[0].suffix == ".png" and seen[0] != old


def test_an_os_error_is_a_value_error_naming_the_file(old, monkeypatch):
    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(ValueError, match=r"cannot write '.*figure\.png': No space left on device"):
        atomic_write_bytes(old, b"new")
    assert old.read_bytes() == OLD
    assert listing(old.parent) == ["figure.png"]


def test_an_os_error_inside_the_writer_is_reported_the_same_way(old):
    with pytest.raises(ValueError, match=r"cannot write '.*figure\.png': disk on fire"):
        with atomic_path(old) as tmp:
            tmp.write_bytes(b"x")
            raise OSError(5, "disk on fire")
    assert old.read_bytes() == OLD and listing(old.parent) == ["figure.png"]


def test_missing_folder_and_file_as_folder(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "a.json", "{}")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        atomic_write_text(a_file / "a.json", "{}")
    assert listing(tmp_path) == ["a_file"]


def test_new_file_gets_the_usual_mode_not_the_temp_files_0600(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "λ = 0.01\n", fsync=False)
    finally:
        os.umask(umask)
    assert path.read_text("utf-8") == "λ = 0.01\n"
    import regsim.files

    assert path.stat().st_mode & 0o777 == 0o666 & ~regsim.files._UMASK


def test_json_is_encoded_before_anything_is_touched(old):
    with pytest.raises(TypeError):
        atomic_write_json(old, {"a": object()})
    assert old.read_bytes() == OLD and listing(old.parent) == ["figure.png"]
    atomic_write_json(old, {"loss": float("nan"), "steps": [1, 2]})
    text = old.read_text()
    assert json.loads(text)["steps"] == [1, 2] and "NaN" in text


def test_presets_are_written_through_it(tmp_path):
    from regsim.hparams import HParams
    from regsim.presets import load_preset, save_preset

    h = HParams(dropout=0.3, weight_decay=0.01)
    save_preset(h, tmp_path / "mine.json", "a test")
    assert load_preset(str(tmp_path / "mine.json")) == h
    with pytest.raises(ValueError, match="does not exist"):
        save_preset(h, tmp_path / "gone" / "mine.json")
    assert listing(tmp_path) == ["mine.json"]
