"""The decoded cache: build, reuse, rebuild, unreadable files, parallel decoding, atomic builds."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ccvae_tools.data import cache
from ccvae_tools.data.base import Catalog, Label, Preprocess
from ccvae_tools.util.errors import DataError, UsageError
from ccvae_tools.data.images import load_image

PRE = Preprocess(size=16, channels=3)


def _write_images(folder: Path, n: int) -> list[Path]:
    """n small images of assorted sizes, modes and formats, each with its own content."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    files = []
    for i in range(n):
        w, h = 16 + (i * 7) % 20, 16 + (i * 5) % 17
        arr = rng.randint(0, 256, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(arr)
        kind = i % 4
        if kind == 1:
            img = img.convert("L")
        elif kind == 2:
            img = img.convert("RGBA")
        ext = "jpg" if kind == 3 else "png"
        p = folder / f"{i:03d}.{ext}"
        img.save(p)
        files.append(p)
    return files


def _catalog(root: Path, files: list[Path], pre: Preprocess = PRE, seed: int = 0) -> Catalog:
    n = len(files)
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 2, (n, 2)).astype(np.float32)
    labels[::5, 1] = np.nan
    return Catalog("folder", root, list(files), labels, [Label("a"), Label("b")],
                   rng.randint(0, 3, n).astype(np.int8), pre)


@pytest.fixture()
def data(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "data"
    return root, _write_images(root / "img", 30)


def _entries(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


def test_build_matches_load_image(data, tmp_path: Path) -> None:
    root, files = data
    cat = _catalog(root, files)
    dec = cache.load_decoded(cat, cache_dir=tmp_path / "c", workers=1)
    assert dec.images.shape == (30, 3, 16, 16) and dec.images.dtype == np.uint8
    for i, f in enumerate(files):
        assert np.array_equal(dec.images[i], load_image(f, PRE))
    assert dec.files == [f"img/{f.name}" for f in files]
    np.testing.assert_array_equal(dec.labels, cat.labels)
    np.testing.assert_array_equal(dec.split, cat.split)
    assert dec.labels.dtype == np.float32 and dec.split.dtype == np.int8
    assert dec.label_names == ["a", "b"] and dec.preprocess == PRE and dec.name == "folder"


def test_result_is_a_read_only_memmap(data, tmp_path: Path) -> None:
    root, files = data
    dec = cache.load_decoded(_catalog(root, files), cache_dir=tmp_path / "c", workers=1)
    assert isinstance(dec.images, np.memmap)
    assert not dec.images.flags.writeable
    with pytest.raises(ValueError):
        dec.images[0, 0, 0, 0] = 1


def test_files_on_disk(data, tmp_path: Path) -> None:
    root, files = data
    cat = _catalog(root, files)
    cache.load_decoded(cat, cache_dir=tmp_path / "c", workers=1)
    (entry,) = (tmp_path / "c").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["images.npy", "labels.npy", "manifest.json",
                                                       "split.npy"]
    m = json.loads((entry / "manifest.json").read_text())
    assert m["format"] == cache.FORMAT and m["name"] == "folder" and m["preprocess"] == PRE.to_json()
    assert m["kept"] == 30 and m["skipped"] == [] and len(m["files"]) == 30
    assert m["files"][0][:2] == ["img/000.png", files[0].stat().st_size]
    assert [lab["name"] for lab in m["labels"]] == ["a", "b"]
    np.testing.assert_array_equal(np.load(entry / "labels.npy"), cat.labels)
    np.testing.assert_array_equal(np.load(entry / "split.npy"), cat.split)


def test_second_call_reuses(data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, files = data
    cat = _catalog(root, files)
    first = cache.load_decoded(cat, cache_dir=tmp_path / "c", workers=1)
    (entry,) = (tmp_path / "c").iterdir()
    stamp = (entry / "images.npy").stat().st_mtime_ns

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache, "_decode_all", no_decoding)
    again = cache.load_decoded(cat, cache_dir=tmp_path / "c", workers=1)
    assert (entry / "images.npy").stat().st_mtime_ns == stamp
    assert np.array_equal(first.images, again.images)


def test_default_location_is_next_to_the_data(data) -> None:
    root, files = data
    cache.load_decoded(_catalog(root, files), workers=1)
    assert len(_entries(root / ".ccvae-cache")) == 1


def test_unwritable_root_falls_back_to_xdg(data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, files = data
    real = cache._writable
    monkeypatch.setattr(cache, "_writable", lambda p: p != root / ".ccvae-cache" and real(p))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache.load_decoded(_catalog(root, files), workers=1)
    assert len(_entries(tmp_path / "xdg" / "ccvae")) == 1
    assert not (root / ".ccvae-cache").exists()


def test_changed_preprocess_rebuilds(data, tmp_path: Path) -> None:
    root, files = data
    cache.load_decoded(_catalog(root, files), cache_dir=tmp_path / "c", workers=1)
    dec = cache.load_decoded(_catalog(root, files, Preprocess(size=8, channels=1)),
                             cache_dir=tmp_path / "c", workers=1)
    assert dec.images.shape == (30, 1, 8, 8)
    assert np.array_equal(dec.images[3], load_image(files[3], Preprocess(size=8, channels=1)))
    assert len(_entries(tmp_path / "c")) == 2


def test_touched_file_rebuilds(data, tmp_path: Path) -> None:
    root, files = data
    cat = _catalog(root, files)
    cache.load_decoded(cat, cache_dir=tmp_path / "c", workers=1)
    Image.new("RGB", (20, 20), (1, 2, 3)).save(files[4])
    st = files[4].stat()
    os.utime(files[4], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    dec = cache.load_decoded(cat, cache_dir=tmp_path / "c", workers=1)
    assert (dec.images[4] == np.array([1, 2, 3], np.uint8)[:, None, None]).all()
    assert len(_entries(tmp_path / "c")) == 2


def test_rebuild_flag(data, tmp_path: Path) -> None:
    root, files = data
    cat = _catalog(root, files)
    cache.load_decoded(cat, cache_dir=tmp_path / "c", workers=1)
    (entry,) = (tmp_path / "c").iterdir()
    inode = (entry / "images.npy").stat().st_ino
    dec = cache.load_decoded(cat, cache_dir=tmp_path / "c", workers=1, rebuild=True)
    assert _entries(tmp_path / "c") == [entry.name]
    assert (entry / "images.npy").stat().st_ino != inode
    assert np.array_equal(dec.images[7], load_image(files[7], PRE))


def test_new_labels_or_split_do_not_decode_again(data, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root, files = data
    cache.load_decoded(_catalog(root, files, seed=0), cache_dir=tmp_path / "c", workers=1)
    monkeypatch.setattr(cache, "_decode_all", lambda *a, **k: pytest.fail("decoded again"))
    other = _catalog(root, files, seed=1)
    dec = cache.load_decoded(other, cache_dir=tmp_path / "c", workers=1)
    np.testing.assert_array_equal(dec.labels, other.labels)
    np.testing.assert_array_equal(dec.split, other.split)
    (entry,) = (tmp_path / "c").iterdir()
    np.testing.assert_array_equal(np.load(entry / "split.npy"), other.split)
    assert sorted(p.name for p in entry.iterdir()) == ["images.npy", "labels.npy", "manifest.json",
                                                       "split.npy"]


def _spoil(files: list[Path]) -> list[int]:
    """Make three files unreadable in three ways; return their indices."""
    files[2].write_text("not an image")
    files[11].write_bytes(files[11].read_bytes()[:40])
    files[29].unlink()
    return [2, 11, 29]


def test_bad_files_skipped(data, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, files = data
    bad = _spoil(files)
    cat = _catalog(root, files)
    dec = cache.load_decoded(cat, cache_dir=tmp_path / "c", workers=1)
    keep = [i for i in range(30) if i not in bad]
    assert dec.images.shape == (27, 3, 16, 16)
    for row, i in enumerate(keep):
        assert np.array_equal(dec.images[row], load_image(files[i], PRE))
    assert dec.files == [f"img/{files[i].name}" for i in keep]
    np.testing.assert_array_equal(dec.labels, cat.labels[keep])
    np.testing.assert_array_equal(dec.split, cat.split[keep])
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "3 of 30" in err and "img/002.png" in err
    (entry,) = (tmp_path / "c").iterdir()
    whole = np.load(entry / "images.npy")                # the shrunk .npy is a valid file
    assert whole.shape == (27, 3, 16, 16)
    assert (entry / "images.npy").stat().st_size == dec.images.offset + whole.nbytes
    m = json.loads((entry / "manifest.json").read_text())
    assert [s["file"] for s in m["skipped"]] == ["img/002.png", "img/011.jpg", "img/029.png"]
    # reused with the same warning, and refused under on_bad="fail"
    assert cache.load_decoded(cat, cache_dir=tmp_path / "c", workers=1).images.shape[0] == 27
    assert "3 of 30" in capsys.readouterr().err
    with pytest.raises(DataError, match="3 of 30"):
        cache.load_decoded(cat, cache_dir=tmp_path / "c", workers=1, on_bad="fail")


def test_bad_files_fail(data, tmp_path: Path) -> None:
    root, files = data
    files[5].write_text("not an image")
    with pytest.raises(DataError) as e:
        cache.load_decoded(_catalog(root, files), cache_dir=tmp_path / "c", workers=1, on_bad="fail")
    assert "img/005.png" in str(e.value) and "\n" not in str(e.value)
    assert _entries(tmp_path / "c") == []                # nothing half-built is left


def test_missing_file_fails_before_decoding(data, tmp_path: Path, monkeypatch) -> None:
    root, files = data
    files[8].unlink()
    monkeypatch.setattr(cache, "_decode_all", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(DataError, match="img/008.png"):
        cache.load_decoded(_catalog(root, files), cache_dir=tmp_path / "c", on_bad="fail")


def test_all_unreadable(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.png")
        files[-1].write_text("text")
    with pytest.raises(DataError, match="none of the 3 images"):
        cache.load_decoded(_catalog(tmp_path, files), cache_dir=tmp_path / "c", workers=1)
    assert _entries(tmp_path / "c") == []


def test_empty_catalog_and_bad_option(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images"):
        cache.load_decoded(_catalog(tmp_path, []), cache_dir=tmp_path / "c")
    with pytest.raises(UsageError):
        cache.load_decoded(_catalog(tmp_path, [tmp_path / "x.png"]), on_bad="ignore")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_parallel_equals_serial(data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    root, files = data
    files[13].write_text("broken")                       # compaction after a parallel build too
    cat = _catalog(root, files)
    serial = cache.load_decoded(cat, cache_dir=tmp_path / "s", workers=1)
    monkeypatch.setattr(cache, "SERIAL_BELOW", 0)
    monkeypatch.setattr(cache, "_mp_context", lambda: multiprocessing.get_context(method))
    parallel = cache.load_decoded(cat, cache_dir=tmp_path / "p", workers=2)
    assert parallel.images.shape == serial.images.shape == (29, 3, 16, 16)
    assert parallel.images.tobytes() == serial.images.tobytes()
    assert parallel.files == serial.files


def test_broken_workers_fall_back_to_this_process(data, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs fork")
    root, files = data
    parent = os.getpid()
    real_init = cache._worker_init

    def dying_init(*args) -> None:
        if os.getpid() != parent:
            os._exit(3)
        real_init(*args)

    monkeypatch.setattr(cache, "SERIAL_BELOW", 0)
    monkeypatch.setattr(cache, "_worker_init", dying_init)
    monkeypatch.setattr(cache, "_mp_context", lambda: multiprocessing.get_context("fork"))
    dec = cache.load_decoded(_catalog(root, files), cache_dir=tmp_path / "c", workers=2)
    assert np.array_equal(dec.images[9], load_image(files[9], PRE))


def test_interrupted_build_leaves_nothing(data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, files = data
    calls = {"n": 0}
    real = cache.load_image

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "load_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.load_decoded(_catalog(root, files), cache_dir=tmp_path / "c", workers=1)
    assert _entries(tmp_path / "c") == []


def test_leftovers_of_killed_builds_are_ignored_and_removed(data, tmp_path: Path) -> None:
    root, files = data
    cat = _catalog(root, files)
    base = tmp_path / "c"
    base.mkdir()
    key = cache.images_key(cat.name, PRE, [f"img/{f.name}" for f in files],
                           [cache._stat(f) for f in files])
    dead = base / f"{key}.building-{cache._host()}-999999999-abcdefgh"   # no such process
    dead.mkdir()
    (dead / "images.npy").write_bytes(b"half")
    (base / key).mkdir()                                 # a damaged final entry: no manifest
    (base / key / "images.npy").write_bytes(b"junk")
    dec = cache.load_decoded(cat, cache_dir=base, workers=1)
    assert _entries(base) == [key]
    assert np.array_equal(dec.images[0], load_image(files[0], PRE))


def test_not_enough_disk(data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, files = data
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(DataError, match="free"):
        cache.load_decoded(_catalog(root, files), cache_dir=tmp_path / "c", workers=1)
    assert _entries(tmp_path / "c") == []


def test_files_outside_the_root_keep_their_path(data, tmp_path: Path) -> None:
    root, files = data
    outside = tmp_path / "elsewhere.png"
    Image.new("RGB", (20, 20)).save(outside)
    dec = cache.load_decoded(_catalog(root, files[:3] + [outside]), cache_dir=tmp_path / "c", workers=1)
    assert dec.files[-1] == str(outside)
