"""Whatever people upload: every case of ``bad_inputs`` through the Predictor, the CLI and the app.

Each gets either a correct result or one clear message: never a traceback, never a dead worker.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from app_helpers import serve
from bad_inputs import Input, make_inputs
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import app
from fer_demo import limits
from fer_demo.io import InvalidImageError

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "astronaut.jpg"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Input]:
    return make_inputs(tmp_path_factory.mktemp("uploads"))


@pytest.fixture(scope="module")
def predictor(release_weights):
    from fer_demo.pipeline import Predictor

    return Predictor(weights_path=release_weights)


def check_result(case: Input, result: dict) -> None:
    """A result (from ``Prediction.to_dict`` or the API) is right for ``case``."""
    assert case.error is None, f"{case}: expected an error containing {case.error!r}, got a result"
    faces = result["faces"]
    if case.faces is not None:
        assert len(faces) == case.faces, f"{case}: {len(faces)} faces"
    assert result["truncated"] == case.truncated
    if case.truncated:
        assert result["faces_found"] > limits.MAX_FACES == len(faces)
    width, height = result["image_size"]
    for face in faces:
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, f"{case}: box {face['box']} outside the image"
        assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    if case.name == "exif rotated":  # found upright: eyes above the mouth
        (lx, ly), (rx, ry), _, (mlx, mly), (mrx, mry) = faces[0]["landmarks"]
        assert max(ly, ry) < min(mly, mry) and abs(ly - ry) < abs(lx - rx)


def check_message(case: Input, message: str) -> None:
    assert case.error is not None, f"{case}: expected a result, got the error {message!r}"
    assert case.error in message, f"{case}: {message!r}"
    assert "Traceback" not in message and "torch" not in message


def test_every_kind_of_case_is_covered(inputs):
    names = {i.name for i in inputs}
    for needed in ("text", "pdf", "video", "empty", "truncated jpeg", "truncated png", "decompression bomb",
                   "24 megapixels", "16x16", "extreme aspect wide", "rgba transparent", "cmyk jpeg", "16-bit png",
                   "grayscale", "palette gif (first frame)", "exif rotated", "no face", "crowd of 56",
                   "face cut by the border"):
        assert needed in names
    bomb = next(i for i in inputs if i.name == "decompression bomb").path
    assert bomb.stat().st_size < 100_000  # a small file...
    assert struct.unpack(">II", bomb.read_bytes()[16:24]) == (20_000, 20_000)  # ...that claims 400 megapixels
    big = Image.open(next(i for i in inputs if i.name == "24 megapixels").path)
    assert big.width * big.height == 24_000_000


# ------------------------------------------------------------------------------------------
# Through the Predictor


def test_predictor(predictor, inputs, subtests):
    for case in inputs:
        with subtests.test(case.name):
            if case.error:
                with pytest.raises(InvalidImageError) as e:
                    predictor.analyze(case.path, cam="gradcam")
                check_message(case, str(e.value))
            else:
                check_result(case, predictor.analyze(case.path, cam="gradcam").to_dict())


# ------------------------------------------------------------------------------------------
# Through the CLI: one batch with every case; bad files get an error record, the batch goes on


def test_cli(inputs, release_weights, tmp_path):
    out = tmp_path / "annotated"
    run = subprocess.run(
        [sys.executable, "-m", "fer_demo", "predict", *[str(i.path) for i in inputs], "--json", "--no-progress",
         "--weights", str(release_weights), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    # A video is not an image for the app's photo path, but the CLI reads videos (fer_demo.video):
    # one record per sampled frame, or one error record if this MP4 cannot be decoded.
    videos = {str(i.path) for i in inputs if i.name == "video"}
    video_records = [r for r in records if r["path"] in videos]
    assert video_records and (all("frame" in r for r in video_records)
                              or [("error" in r) for r in video_records] == [True]), video_records
    records = [r for r in records if r["path"] not in videos]
    inputs = [i for i in inputs if str(i.path) not in videos]
    assert [r["path"] for r in records] == [str(i.path) for i in inputs]
    for case, record in zip(inputs, records):
        if case.error:
            check_message(case, record.get("error", ""))
        else:
            assert "error" not in record, f"{case}: {record.get('error')}"
            check_result(case, record)
    assert len(list(out.glob("*.png"))) >= sum(1 for i in inputs if not i.error)


# ------------------------------------------------------------------------------------------
# Through the running app (gradio_client, the way any visitor's upload arrives)


@pytest.fixture(scope="module")
def client(predictor, release_weights):
    demo = app.build_demo(predictor, weights=release_weights, examples=[])
    with serve(demo) as url:
        yield Client(url, verbose=False)


@pytest.mark.slow
def test_running_app(client, inputs, subtests):
    for case in inputs:
        with subtests.test(case.name):
            if case.error:
                with pytest.raises(AppError) as e:
                    client.predict(handle_file(str(case.path)), api_name="/predict")
                check_message(case, str(e.value))
            else:
                check_result(case, client.predict(handle_file(str(case.path)), api_name="/predict"))
    # ...and the worker is still alive and well.
    result = client.predict(handle_file(str(ASTRONAUT)), api_name="/predict")
    assert result["faces"][0]["label"] == "happy"
