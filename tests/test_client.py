"""The app over HTTP: a real server (in this process) and ``gradio_client``, as an API user sees it."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from app_helpers import serve
from gradio import utils as gradio_utils
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import app
from fer_demo import limits
from fer_demo.io import InvalidImageError, load_image
from fer_demo.model import EMOTIONS
from fer_demo.ui.options import DEFAULT_CAM

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ASTRONAUT = EXAMPLES / "astronaut.jpg"

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def url(release_weights):
    from fer_demo.pipeline import Predictor

    demo = app.build_demo(Predictor(weights_path=release_weights), weights=release_weights)
    with serve(demo) as address:
        yield address


@pytest.fixture(scope="module")
def client(url) -> Client:
    return Client(url, verbose=False)


def check_one_face(result: dict) -> dict:
    assert result["faces_found"] == 1 and len(result["faces"]) == 1, result
    face = result["faces"][0]
    assert set(face["probabilities"]) == set(EMOTIONS)
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
    width, height = result["image_size"]
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    return face


def test_api_has_one_documented_endpoint(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert sorted(endpoints) == ["/predict", "/predict_video"]
    params = [p["parameter_name"] for p in endpoints["/predict"]["parameters"]]
    assert params == ["image", "cam", "target", "tta"]


def test_round_trip_one_face(client):
    result = client.predict(handle_file(str(ASTRONAUT)), api_name="/predict")
    face = check_one_face(result)
    assert face["target"] == face["label"]  # default: Grad-CAM of the predicted class
    assert result["settings"] == {"cam": DEFAULT_CAM, "target": None, "tta": "none"}


def test_round_trip_with_options(client):
    result = client.predict(handle_file(str(ASTRONAUT)), "eigencam", "sad", "flip", api_name="/predict")
    face = check_one_face(result)
    assert face["target"] == "sad" and result["cam"] == "eigencam"
    assert result["settings"] == {"cam": "eigencam", "target": "sad", "tta": "flip"}


def test_no_face_is_an_empty_result_not_an_error(client):
    result = client.predict(handle_file(str(EXAMPLES / "no_face_cat.jpg")), api_name="/predict")
    assert result["faces"] == [] and result["faces_found"] == 0


def test_bad_file_gives_the_clear_message_and_the_server_keeps_serving(client, tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"this is a text file, not a photo\n")
    with pytest.raises(InvalidImageError) as expected:
        load_image(bad)
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(bad)), api_name="/predict")
    assert str(e.value) == str(expected.value)
    assert "Traceback" not in str(e.value)
    check_one_face(client.predict(handle_file(str(ASTRONAUT)), api_name="/predict"))


def test_invalid_option_is_refused_clearly(client):
    with pytest.raises(AppError, match="Unknown test-time augmentation 'zoom'"):
        client.predict(handle_file(str(ASTRONAUT)), "gradcam", "predicted", "zoom", api_name="/predict")


def test_upload_over_the_limit_is_refused_before_the_app(client, url, tmp_path):
    big = tmp_path / "big.jpg"
    # The server's upload limit is the larger of the photo and video limits (videos are larger).
    server_limit = max(limits.MAX_UPLOAD_BYTES, limits.VIDEO_MAX_UPLOAD_BYTES)
    with open(big, "wb") as fh:
        fh.truncate(server_limit + 1)
    # The client reads the limit from the server's config and refuses to send...
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {server_limit} bytes"):
        client.predict(handle_file(str(big)), api_name="/predict")
    # ...and the server refuses the bytes of anyone who sends them anyway.
    with open(big, "rb") as fh:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.jpg", fh, "image/jpeg")}, timeout=60)
    assert response.status_code == 413
    check_one_face(client.predict(handle_file(str(ASTRONAUT)), api_name="/predict"))


def test_photo_over_the_photo_limit_is_refused_by_the_app(client, tmp_path):
    big = tmp_path / "big.jpg"
    with open(big, "wb") as fh:
        fh.truncate(limits.MAX_UPLOAD_BYTES + 1)
    with pytest.raises(AppError, match="file too large"):
        client.predict(handle_file(str(big)), api_name="/predict")


def test_photo_over_the_pixel_limit_gets_the_clean_message(client, tmp_path):
    """Issue 22: past twice the pixel limit the API answered with Pillow's decompression-bomb words."""
    from test_io import jpeg_declaring

    big = tmp_path / "huge.jpg"
    big.write_bytes(jpeg_declaring(12000, 12000))
    with pytest.raises(AppError) as refused:
        client.predict(handle_file(str(big)), api_name="/predict")
    assert "12000x12000 = 144.0 megapixels; at most 50 megapixels are accepted" in str(refused.value)
    assert "bomb" not in str(refused.value)


def unique_photo(folder: Path, name: str) -> Path:
    """The astronaut with one random pixel block, so its upload hash is new to the server."""
    from PIL import Image

    image = Image.open(ASTRONAUT).convert("RGB")
    image.paste(tuple(int(b) for b in os.urandom(3)), (0, 0, 8, 8))
    path = folder / name
    image.save(path, quality=95)
    return path


def on_server(name: str) -> list[Path]:
    return list(Path(gradio_utils.get_upload_folder()).rglob(name))


def test_uploads_do_not_outlive_the_request(client, url, tmp_path):
    photo = unique_photo(tmp_path, f"privacy-{os.urandom(4).hex()}.jpg")
    with open(photo, "rb") as fh:  # an upload alone: it is on the server until analysed...
        response = httpx.post(f"{url}gradio_api/upload", files={"files": (photo.name, fh, "image/jpeg")}, timeout=60)
    response.raise_for_status()
    assert len(on_server(photo.name)) == 1
    check_one_face(client.predict(handle_file(str(photo)), api_name="/predict"))  # (same bytes, same file)
    assert on_server(photo.name) == []  # ...and gone once analysed


def test_many_clients_sending_the_same_photo_at_once(url, tmp_path):
    """Identical uploads share one file on the server: deleting it must not fail the others."""
    photo = unique_photo(tmp_path, f"shared-{os.urandom(4).hex()}.jpg")

    def one(_):
        return Client(url, verbose=False).predict(handle_file(str(photo)), api_name="/predict")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    for result in results:
        check_one_face(result)
    assert on_server(photo.name) == []


@pytest.mark.parametrize("target", [Path(app.__file__).resolve(), Path("/etc/passwd"),
                                    Path(app.__file__).resolve().parent / "weights" / "fer_vgg19.safetensors"])
def test_the_server_does_not_serve_arbitrary_files(url, target):
    response = httpx.get(f"{url}gradio_api/file={target}", timeout=30)
    assert response.status_code in (403, 404)
    assert b"import" not in response.content and b"root:" not in response.content



def test_nothing_about_the_photo_goes_to_the_logs(client, tmp_path, caplog, capfd):
    """Neither the file name, nor the result (labels, boxes), nor image bytes are logged or printed."""
    import logging

    photo = unique_photo(tmp_path, f"secret-{os.urandom(4).hex()}.jpg")
    bad = tmp_path / f"secret-{os.urandom(4).hex()}.png"
    bad.write_bytes(b"not an image")
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG):
        result = client.predict(handle_file(str(photo)), api_name="/predict")
        with pytest.raises(AppError):
            client.predict(handle_file(str(bad)), api_name="/predict")
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records) + out + err
    face = result["faces"][0]
    for secret in (photo.name, bad.name, photo.stem, "probabilities", str(face["box"][0])[:7], "base64"):
        assert secret not in logged, secret


# --- /predict_video ------------------------------------------------------------------------------

def test_predict_video_round_trip(client, tmp_path):
    from video_clips import astronaut_frames, write_clip

    clip = write_clip(tmp_path / f"clip-{os.urandom(4).hex()}.mp4", astronaut_frames(20), fps=10)  # 2 s
    result = client.predict(handle_file(str(clip)), 5, "none", api_name="/predict_video")
    assert result["frames"] == 10 and result["fps"] == 5 and result["cam"] is None
    assert result["faces"] == 1 and result["video"]["width"] == 320 and result["video"]["height"] == 240
    records = result["records"]
    assert [r["frame"] for r in records] == list(range(10)) and {r["face"] for r in records} == {1}
    assert [r["time"] for r in records] == pytest.approx([k / 5 for k in range(10)])
    for r in records:
        assert set(r["probabilities"]) == set(EMOTIONS)
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert {r["label"] for r in records} == {"happy"}
    assert on_server(clip.name) == []  # the upload is deleted once analysed


def test_predict_video_refuses_a_photo_clearly(client):
    with pytest.raises(AppError, match="not a video"):
        client.predict(handle_file(str(ASTRONAUT)), 5, "none", api_name="/predict_video")
    with pytest.raises(AppError, match="at most 10 frames/s"):
        client.predict(handle_file(str(ASTRONAUT)), 50, "none", api_name="/predict_video")
