"""python -m fer_demo predict: batch over files and folders, JSON lines, per-file errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from fer_demo import pipeline
from fer_demo.__main__ import expand_paths, main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def shared_predictor(release_weights) -> pipeline.Predictor:
    return pipeline.Predictor(release_weights)


@pytest.fixture(autouse=True)
def reuse_predictor(monkeypatch, shared_predictor, release_weights):
    """In-process CLI runs reuse one loaded Predictor (building VGG19 takes seconds on a CPU);
    any other weights path goes through the real constructor."""
    real = pipeline.Predictor

    def make(weights_path, detector=None, max_faces=shared_predictor.max_faces, device="cpu", abstain=True):
        if Path(weights_path) == Path(release_weights) and detector is None and max_faces == shared_predictor.max_faces:
            shared_predictor.abstain = abstain  # as Predictor(abstain=...), without reloading weights
            return shared_predictor
        return real(weights_path, detector=detector, max_faces=max_faces, device=device, abstain=abstain)

    monkeypatch.setattr(pipeline, "Predictor", make)


@pytest.fixture()
def folder(tmp_path) -> Path:
    """Two example photos and a text file pretending to be a JPEG."""
    d = tmp_path / "photos"
    d.mkdir()
    shutil.copy(EXAMPLES / "astronaut.jpg", d / "astronaut.jpg")
    shutil.copy(EXAMPLES / "no_face_cat.jpg", d / "no_face_cat.jpg")
    (d / "notes.jpg").write_text("not a photo\n")
    (d / "README.txt").write_text("folders are expanded to image files only\n")
    return d


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["predict", *argv, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_expand_paths(folder, tmp_path):
    items = expand_paths([folder, tmp_path / "missing.png"])
    assert [p.name for p, _ in items] == ["astronaut.jpg", "no_face_cat.jpg", "notes.jpg", "missing.png"]
    assert [err is None for _, err in items] == [True, True, True, False]


def test_json_lines_with_an_error_record(folder, capsys, release_weights):
    code, out, _ = run(capsys, str(folder), "--json", "--weights", str(release_weights))
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    by_name = {Path(r["path"]).name: r for r in records}
    assert list(by_name) == ["astronaut.jpg", "no_face_cat.jpg", "notes.jpg"]
    astro = by_name["astronaut.jpg"]
    assert astro["faces_found"] == 1 and astro["truncated"] is False and len(astro["faces"]) == 1
    face = astro["faces"][0]
    assert face["target"] == face["label"] and len(face["probabilities"]) == 7
    assert by_name["no_face_cat.jpg"]["faces"] == [] and by_name["no_face_cat.jpg"]["faces_found"] == 0
    assert set(by_name["notes.jpg"]) == {"path", "error"}
    assert "not an image" in by_name["notes.jpg"]["error"]


def test_out_writes_annotated_images_and_overlays(folder, tmp_path, capsys, release_weights):
    out_dir = tmp_path / "out"
    code, out, _ = run(capsys, str(folder / "astronaut.jpg"), str(folder / "no_face_cat.jpg"),
                       "--cam", "gradcam++", "--target", "happy", "--out", str(out_dir),
                       "--weights", str(release_weights))
    assert code == 0
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["astronaut.annotated.png", "astronaut.face0.gradcam++.png", "astronaut.face0.png",
                     "no_face_cat.annotated.png"]
    assert Image.open(out_dir / "astronaut.annotated.png").size == (512, 512)
    assert Image.open(out_dir / "astronaut.face0.gradcam++.png").size == (192, 192)
    lines = out.splitlines()
    assert lines[0].startswith(str(folder / "astronaut.jpg") + ": 1 face: ") and "CAM for happy" in lines[0]
    assert lines[1].endswith("no face found")


def test_every_input_failing_exits_non_zero(folder, tmp_path, capsys, release_weights):
    code, out, err = run(capsys, str(folder / "notes.jpg"), str(tmp_path / "missing.png"), "--json",
                         "--weights", str(release_weights))
    assert code == 1
    assert [set(json.loads(line)) for line in out.splitlines()] == [{"path", "error"}] * 2
    assert "no image could be analysed" in err


def test_usage_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["predict", str(EXAMPLES), "--cam", "scorecam"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["predict"])
    assert e.value.code == 2
    assert main(["predict", str(EXAMPLES), "--weights", str(tmp_path / "none.safetensors")]) == 2
    assert "cannot load the classifier" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point(release_weights):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "fer_demo", "predict", str(EXAMPLES / "astronaut.jpg"), "--json", "--cam", "none",
         "--weights", str(release_weights)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    [record] = [json.loads(line) for line in proc.stdout.splitlines()]
    assert record["faces_found"] == 1 and record["faces"][0]["target"] is None


# --- videos ---------------------------------------------------------------------------------------

def test_video_json_records_per_sampled_frame_and_photos_alongside(tmp_path, capsys, release_weights):
    from video_clips import astronaut_frames, write_clip

    clip = write_clip(tmp_path / "clip.mp4", astronaut_frames(20), fps=10)  # 2 s
    code, out, _ = run(capsys, str(clip), str(EXAMPLES / "astronaut.jpg"), "--json", "--cam", "none",
                       "--fps", "5", "--weights", str(release_weights))
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    frames, photo = records[:-1], records[-1]
    assert [r["frame"] for r in frames] == list(range(10)) and {r["path"] for r in frames} == {str(clip)}
    assert [r["time"] for r in frames] == pytest.approx([k / 5 for k in range(10)])
    assert [r["detected"] for r in frames] == [k % 3 == 0 for k in range(10)]
    for r in frames:
        [face] = r["faces"]
        assert face["track_id"] == 1 and face["label"] == "happy" and len(face["probabilities"]) == 7
    assert photo["path"] == str(EXAMPLES / "astronaut.jpg") and photo["faces_found"] == 1  # the photo record as before


def test_video_out_writes_the_annotated_video_plot_and_csv(tmp_path, capsys, release_weights):
    from video_clips import astronaut_frames, write_clip

    clip = write_clip(tmp_path / "clip.mp4", astronaut_frames(10), fps=10)
    bad = tmp_path / "broken.mp4"
    bad.write_text("not a video\n")
    out_dir = tmp_path / "out"
    code, out, _ = run(capsys, str(clip), str(bad), "--out", str(out_dir), "--weights", str(release_weights))
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["clip.annotated.mp4", "clip.csv", "clip.timeline.png"]
    lines = out.splitlines()
    assert lines[0].startswith(f"{clip}: 5 frames analysed at 5 frames/s") and "1 face" in lines[0]
    assert lines[1] == f"{bad}: error: broken.mp4: not a video; MP4, MOV or WebM files are accepted"
    assert len((out_dir / "clip.csv").read_text().splitlines()) == 1 + 5


def test_video_fps_out_of_range_is_a_usage_error(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "--fps", "100"]) == 2
    assert "--fps must be above 0 and at most" in capsys.readouterr().err


def test_a_photo_over_the_pixel_limit_gets_the_clean_message(tmp_path, capsys, release_weights):
    """Issue 22: a 12000x12000 JPEG got Pillow's decompression-bomb words; the CLI says the app's."""
    from test_io import jpeg_declaring

    big = tmp_path / "huge.jpg"
    big.write_bytes(jpeg_declaring(12000, 12000))
    code, out, _ = run(capsys, str(big), "--json", "--weights", str(release_weights))
    assert code != 0
    assert json.loads(out)["error"] == ("image too large: 12000x12000 = 144.0 megapixels; "
                                        "at most 50 megapixels are accepted")


def test_unreadable_face_is_refused_in_json_unless_no_abstain(tmp_path, capsys, release_weights):
    from PIL import ImageFilter

    blurred = tmp_path / "blurred.png"
    Image.open(EXAMPLES / "grace_hopper.jpg").convert("RGB").filter(ImageFilter.GaussianBlur(5)).save(blurred)
    code, out, _ = run(capsys, str(blurred), "--json", "--cam", "none")
    [face] = json.loads(out)["faces"]
    assert code == 0 and face["abstained"] is True and face["label"] is None
    assert face["guess"] and "blurred" in face["quality"]["reasons"]
    assert face["display_label"].startswith("can't read this face reliably")
    code, out, _ = run(capsys, str(blurred), "--cam", "none")
    assert "can't read this face reliably (blurred" in out
    code, out, _ = run(capsys, str(blurred), "--json", "--cam", "none", "--no-abstain")
    [face] = json.loads(out)["faces"]
    assert face["abstained"] is False and face["label"] == face["guess"]
