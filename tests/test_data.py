"""FER2013 loaders (train.data): folder and CSV layouts, bad data, fingerprints."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from fer_demo.model import EMOTIONS, FACE_SIZE
from train.data import CSV_SPLITS, DataError, load_csv, load_folder, load_split
from train_helpers import folder_order, noise_face, write_csv, write_folder, write_image

ANGRY, DISGUST, FEAR, HAPPY, SAD, SURPRISE, NEUTRAL = range(7)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# ----------------------------------------------------------------------------- folder layout


def test_folder_layout_loads_png_jpg_and_resizes(tmp_path, rng):
    root = tmp_path / "fer"
    a0, a1, h0, n0 = (noise_face(rng) for _ in range(4))
    write_image(root / "train" / "angry" / "a0.png", a0)
    write_image(root / "train" / "angry" / "a1.png", a1)
    write_image(root / "train" / "neutral" / "n0.png", n0)
    # JPEG is lossy: the loader must give what PIL decodes, not the original array.
    write_image(root / "train" / "happy" / "h0.jpg", h0)
    big = rng.integers(0, 256, size=(64, 60), dtype=np.uint8)  # not 48x48: resized
    write_image(root / "train" / "sad" / "s0.png", big)
    (root / "train" / "sad" / "notes.txt").write_text("not an image, ignored")
    write_image(root / "test" / "surprise" / "t0.png", noise_face(rng))

    ds = load_folder(root, "train", progress=False)
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert tuple(ds.images.shape) == (5, FACE_SIZE, FACE_SIZE)
    # Class folders are read sorted by name: angry, happy, neutral, sad; labels are EMOTIONS indices.
    assert ds.labels.tolist() == [ANGRY, ANGRY, HAPPY, NEUTRAL, SAD]
    assert ds.split == "train" and "train" in ds.source
    np.testing.assert_array_equal(ds.images[0].numpy(), a0)  # PNG is lossless
    np.testing.assert_array_equal(ds.images[1].numpy(), a1)
    np.testing.assert_array_equal(ds.images[3].numpy(), n0)
    with Image.open(root / "train" / "happy" / "h0.jpg") as im:
        np.testing.assert_array_equal(ds.images[2].numpy(), np.asarray(im.convert("L")))
    expected_big = np.asarray(Image.fromarray(big).resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(ds.images[4].numpy(), expected_big)
    assert ds.class_counts() == [2, 0, 0, 1, 1, 0, 1]

    test = load_split(root, "test", progress=False)  # load_split dispatches on a folder
    assert test.labels.tolist() == [SURPRISE] and len(test) == 1


def test_folder_rgb_images_become_gray(tmp_path, rng):
    root = tmp_path / "fer"
    rgb = np.repeat(noise_face(rng)[..., None], 3, axis=2)
    (root / "train" / "fear").mkdir(parents=True)
    Image.fromarray(rgb).save(root / "train" / "fear" / "x.png")
    ds = load_folder(root, "train", progress=False)
    np.testing.assert_array_equal(ds.images[0].numpy(), rgb[..., 0])
    assert ds.labels.tolist() == [FEAR]


def test_folder_missing_split_folder(tmp_path, rng):
    root = tmp_path / "fer"
    write_image(root / "train" / "happy" / "0.png", noise_face(rng))
    with pytest.raises(DataError, match=r"missing split folder test/") as e:
        load_folder(root, "test", progress=False)
    assert str(root) in str(e.value)


def test_folder_unknown_class_folder(tmp_path, rng):
    root = tmp_path / "fer"
    write_image(root / "train" / "happy" / "0.png", noise_face(rng))
    write_image(root / "train" / "contempt" / "0.png", noise_face(rng))
    with pytest.raises(DataError, match="contempt") as e:
        load_folder(root, "train", progress=False)
    assert str(root / "train") in str(e.value)


def test_other_datasets_class_names_map_onto_the_seven(tmp_path, rng):
    """RAF-DB/AffectNet-style folder names, any size and colour: mapped by name, resized, gray."""
    root = tmp_path / "mine"
    big_rgb = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    write_image(root / "train" / "Happiness" / "a.png", big_rgb)
    write_image(root / "train" / "anger" / "b.jpg", noise_face(rng))
    write_image(root / "train" / "surprised" / "c.png", rng.integers(0, 256, (30, 30), dtype=np.uint8))
    Image.fromarray(big_rgb).convert("CMYK").save(root / "train" / "Happiness" / "d.jpg")
    ds = load_folder(root, "train", progress=False)
    assert sorted(ds.labels.tolist()) == sorted([HAPPY, ANGRY, SURPRISE, HAPPY])
    assert ds.images.shape == (4, FACE_SIZE, FACE_SIZE) and ds.images.dtype == torch.uint8


def test_unknown_class_is_an_error_listing_the_names_or_is_skipped(tmp_path, rng):
    root = tmp_path / "mine"
    write_image(root / "train" / "happy" / "0.png", noise_face(rng))
    write_image(root / "train" / "contempt" / "0.png", noise_face(rng))
    with pytest.raises(DataError, match=r"contempt.*'angry'.*happiness.*--ignore-classes"):
        load_folder(root, "train", progress=False)
    with pytest.warns(UserWarning, match=r"skipped class folder\(s\) \['contempt'\]"):
        ds = load_folder(root, "train", progress=False, ignore_classes=True)
    assert ds.labels.tolist() == [HAPPY]
    (root / "train" / "happy" / "0.png").unlink()  # only an ignored class left: nothing to train on
    with pytest.raises(DataError, match="no image files"), pytest.warns(UserWarning):
        load_folder(root, "train", progress=False, ignore_classes=True)


def test_folder_without_images(tmp_path):
    (tmp_path / "fer" / "train" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="no image files"):
        load_folder(tmp_path / "fer", "train", progress=False)


def test_folder_invalid_split_name(tmp_path, rng):
    write_image(tmp_path / "fer" / "train" / "happy" / "0.png", noise_face(rng))
    with pytest.raises(DataError, match="Invalid split 'private'"):
        load_folder(tmp_path / "fer", "private", progress=False)


def test_load_split_rejects_other_paths(tmp_path):
    with pytest.raises(DataError, match="not a FER2013 CSV file nor a folder"):
        load_split(tmp_path / "does-not-exist", "train", progress=False)
    other = tmp_path / "x.txt"
    other.write_text("hello")
    with pytest.raises(DataError, match="not a FER2013 CSV file nor a folder"):
        load_split(other, "train", progress=False)


def _write_many(root, n_good, rng):
    samples = [(HAPPY if i % 2 else SAD, noise_face(rng)) for i in range(n_good)]
    write_folder(root, {"train": samples})
    return samples


def _write_bad(path, kind):
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "text":
        path.write_text("this is not an image")
    elif kind == "truncated":  # a real PNG header, then cut off
        write_image(path, np.full((48, 48), 7, np.uint8))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")


def test_folder_one_unreadable_image_is_skipped_with_warning(tmp_path, rng):
    root = tmp_path / "fer"
    samples = _write_many(root, 100, rng)
    bad = root / "train" / "happy" / "zz_broken.jpg"
    _write_bad(bad, "truncated")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image") as rec:
        ds = load_folder(root, "train", progress=False)
    # Only the loader's own warning: a ResourceWarning of an earlier test's garbage can land in rec too.
    skipped = [w for w in rec if "unreadable image" in str(w.message)]
    assert len(skipped) == 1 and "zz_broken.jpg" in str(skipped[0].message)
    assert len(ds) == 100
    expected = folder_order(samples)
    assert ds.labels.tolist() == [lab for lab, _ in expected]
    np.testing.assert_array_equal(ds.images.numpy(), np.stack([img for _, img in expected]))


def test_folder_too_many_unreadable_images(tmp_path, rng):
    root = tmp_path / "fer"
    _write_many(root, 99, rng)
    _write_bad(root / "train" / "happy" / "bad1.png", "text")
    _write_bad(root / "train" / "sad" / "bad2.jpg", "empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # must fail, not warn and carry on
        with pytest.raises(DataError, match=r"2 of 101 images are unreadable") as e:
            load_folder(root, "train", progress=False)
    assert "bad1.png" in str(e.value) and str(root / "train") in str(e.value)


def test_folder_all_unreadable(tmp_path):
    root = tmp_path / "fer"
    _write_bad(root / "train" / "happy" / "x.png", "text")
    with pytest.raises(DataError, match=r"1 of 1 images are unreadable"):
        load_folder(root, "train", progress=False)


# ----------------------------------------------------------------------------- CSV layout


def _csv_rows(rng):
    rows = [  # (label, image, Usage), interleaved like the real fer2013.csv
        (NEUTRAL, noise_face(rng), "Training"),
        (ANGRY, noise_face(rng), "PublicTest"),
        (HAPPY, noise_face(rng), "Training"),
        (DISGUST, noise_face(rng), "PrivateTest"),
        (FEAR, noise_face(rng), "Training"),
        (SURPRISE, noise_face(rng), "PublicTest"),
        (SAD, noise_face(rng), "PrivateTest"),
        (ANGRY, noise_face(rng), "Training"),
    ]
    return rows


def test_csv_split_mapping_and_label_order(tmp_path, rng):
    rows = _csv_rows(rng)
    path = write_csv(tmp_path / "fer2013.csv", rows)
    assert CSV_SPLITS == {"train": "Training", "test": "PublicTest", "private": "PrivateTest"}
    for split, usage in CSV_SPLITS.items():
        ds = load_split(path, split, progress=False)  # load_split dispatches on .csv
        want = [(lab, img) for lab, img, u in rows if u == usage]
        assert ds.split == split and ds.source.endswith(usage)
        assert ds.images.dtype == torch.uint8 and tuple(ds.images.shape) == (len(want), FACE_SIZE, FACE_SIZE)
        # CSV integers are the canonical EMOTIONS indices, kept as they are.
        assert ds.labels.tolist() == [lab for lab, _ in want]
        np.testing.assert_array_equal(ds.images.numpy(), np.stack([img for _, img in want]))
    train = load_csv(path, "train", progress=False)
    assert [EMOTIONS[i] for i in train.labels] == ["neutral", "happy", "fear", "angry"]


def test_csv_header_with_spaces_and_usage_whitespace(tmp_path, rng):
    img = noise_face(rng)
    path = write_csv(tmp_path / "f.csv", [(3, img, " Training ")], header=("emotion", " pixels", "Usage "))
    ds = load_csv(path, "train", progress=False)
    assert ds.labels.tolist() == [HAPPY]


@pytest.mark.parametrize(
    "row, line, pattern",
    [
        (("3", " ".join(["1"] * 2303), "Training"), 3, r"2303 pixel values, expected 2304"),
        (("3", " ".join(["1"] * 2305), "Training"), 3, r"2305 pixel values, expected 2304"),
        (("7", " ".join(["1"] * 2304), "Training"), 3, r"emotion 7 is outside 0-6"),
        (("-1", " ".join(["1"] * 2304), "Training"), 3, r"emotion -1 is outside 0-6"),
        (("happy", " ".join(["1"] * 2304), "Training"), 3, r"emotion 'happy' is not an integer"),
        (("3", " ".join(["256"] * 2304), "Training"), 3, r"within 0-255"),
        (("3", " ".join(["1.5"] * 2304), "Training"), 3, r"pixels must be integers"),
        (("3", " ".join(["1"] * 2304), "Validation"), 3, r"Usage 'Validation' is not one of"),
        (("3", " ".join(["1"] * 2304)), 3, r"expected 3 fields"),
    ],
)
def test_csv_bad_rows_name_the_line(tmp_path, rng, row, line, pattern):
    path = tmp_path / "fer2013.csv"
    good = ("0", " ".join(["5"] * 2304), "Training")
    with open(path, "w") as fh:
        fh.write("emotion,pixels,Usage\n")
        for r in (good, row, good):
            fh.write(",".join(r) + "\n")
    with pytest.raises(DataError, match=pattern) as e:
        load_csv(path, "train", progress=False)
    assert f"{path}:{line}:" in str(e.value)


@pytest.mark.parametrize("header", ["emotion,pixels", "label,pixels,Usage", "pixels,emotion,Usage", ""])
def test_csv_wrong_header(tmp_path, header):
    path = tmp_path / "fer2013.csv"
    path.write_text(header + ("\n" if header else "") + "0," + " ".join(["5"] * 2304) + ",Training\n")
    with pytest.raises(DataError, match="header must be emotion,pixels,Usage") as e:
        load_csv(path, "train", progress=False)
    assert str(path) in str(e.value)


def test_csv_empty_file_and_missing_split(tmp_path, rng):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="header must be"):
        load_csv(empty, "train", progress=False)
    path = write_csv(tmp_path / "f.csv", [(0, noise_face(rng), "Training")])
    with pytest.raises(DataError, match="no rows with Usage 'PrivateTest'"):
        load_csv(path, "private", progress=False)
    with pytest.raises(DataError, match="Invalid split 'val'"):
        load_csv(path, "val", progress=False)


# ----------------------------------------------------------------------------- fingerprint


def test_fingerprint_same_data_csv_and_png_folder(tmp_path, rng):
    """PNG is lossless: the same faces and labels give the same fingerprint in either layout.

    The CSV rows are written in the order the folder loader reads the PNGs (class folders
    sorted by name, then file names).
    """
    samples = [(lab, noise_face(rng)) for lab in (HAPPY, ANGRY, NEUTRAL, SAD, HAPPY, DISGUST, FEAR, SURPRISE)]
    root = write_folder(tmp_path / "fer", {"train": samples}, suffix=".png")
    ordered = folder_order(samples)
    csv_path = write_csv(tmp_path / "fer2013.csv", [(lab, img, "Training") for lab, img in ordered]
                         + [(ANGRY, noise_face(rng), "PublicTest")])
    from_folder = load_split(root, "train", progress=False)
    from_csv = load_split(csv_path, "train", progress=False)
    assert torch.equal(from_folder.images, from_csv.images)
    assert torch.equal(from_folder.labels, from_csv.labels)
    fp = from_folder.fingerprint()
    assert fp == from_csv.fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0

    # Any change of a pixel or a label changes it.
    changed = from_csv.images.clone()
    changed[3, 10, 10] ^= 1
    assert type(from_csv)(changed, from_csv.labels, "", "train").fingerprint() != fp
    relabelled = from_csv.labels.clone()
    relabelled[0] = (relabelled[0] + 1) % 7
    assert type(from_csv)(from_csv.images, relabelled, "", "train").fingerprint() != fp


def test_fingerprint_does_not_depend_on_sample_order(tmp_path, rng):
    samples = [(lab, noise_face(rng)) for lab in (HAPPY, ANGRY, NEUTRAL, SAD)]
    root = write_folder(tmp_path / "fer", {"train": samples})
    csv_path = write_csv(tmp_path / "fer2013.csv", [(lab, img, "Training") for lab, img in samples])
    assert load_split(root, "train", progress=False).fingerprint() == load_split(csv_path, "train", progress=False).fingerprint()


# ----------------------------------------------------------------------------- module layout


def _train_imports() -> dict[str, set[str]]:
    """train module -> the train modules it imports anywhere in its code (function-level imports too)."""
    import ast
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "train"
    graph: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        graph[f"train.{path.stem}"] = {n for n in names if n.startswith("train.") and n != f"train.{path.stem}"}
    return {m: {n for n in deps if n in graph} for m, deps in graph.items()}


def test_train_modules_import_each_other_without_a_circle():
    """Issue 22: train.data, train.ferplus and train.photos imported each other (hidden by imports
    inside functions). Every import, wherever it sits, counts: the graph has no cycle."""
    from graphlib import CycleError, TopologicalSorter

    graph = _train_imports()
    assert {"train.data", "train.ferplus", "train.photos", "train.dataset"} <= set(graph)
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as e:
        pytest.fail(f"import cycle among train modules: {e.args[1]}")


@pytest.mark.parametrize("module", ["train.dataset", "train.data", "train.ferplus", "train.photos"])
def test_each_loader_imports_alone_in_a_fresh_interpreter(module):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
