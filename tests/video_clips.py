"""Test videos made on the spot with PyAV from the example photos (nothing binary is checked in)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def astronaut_frames(n: int, width: int = 320, height: int = 240, step: int = 3) -> list[np.ndarray]:
    """``n`` frames of a ``width`` x ``height`` window panning right across examples/astronaut.jpg
    (scaled so the face is about half the frame's height), ``step`` px a frame: one face moving left."""
    photo = Image.open(EXAMPLES / "astronaut.jpg").convert("RGB")
    scale = height * 1.6 / photo.height
    big = np.asarray(photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BILINEAR))
    top = round(0.05 * big.shape[0])
    x0 = max(0, round(0.55 * big.shape[1]) - width // 2 - step * n // 2)
    frames = []
    for k in range(n):
        x = min(x0 + step * k, big.shape[1] - width)
        frames.append(np.ascontiguousarray(big[top:top + height, x:x + width]))
    return frames


# Where each example photo's face is (MTCNN's box on the photo): centre (x, y) and height, as fractions
# of the photo's width and height.
FACE_AT = {"astronaut.jpg": (0.436, 0.229, 0.227), "grace_hopper.jpg": (0.510, 0.367, 0.376)}


def face_window(name: str, width: int = 320, height: int = 240, face_height: float = 0.5) -> np.ndarray:
    """A ``width`` x ``height`` RGB frame cut from examples/``name`` so that its face is in the centre,
    ``face_height`` of the frame tall: two photos give two different people at the same place."""
    photo = Image.open(EXAMPLES / name).convert("RGB")
    cx, cy, fh = FACE_AT[name]
    scale = face_height * height / (fh * photo.height)
    big = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BILINEAR)
    canvas = Image.new("RGB", (width, height), (128, 128, 128))
    canvas.paste(big, (round(width / 2 - cx * big.width), round(height / 2 - cy * big.height)))
    return np.asarray(canvas)


def cut_frames(n_each: int, names: tuple[str, ...] = ("astronaut.jpg", "grace_hopper.jpg", "astronaut.jpg"),
               width: int = 320, height: int = 240) -> list[np.ndarray]:
    """A film that cuts between faces at the same place: ``n_each`` frames of each photo's face in turn."""
    return [face_window(name, width, height) for name in names for _ in range(n_each)]


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 10, codec: str = "libx264",
               rotation: int | None = None, fmt: str | None = None) -> Path:
    """Encode RGB ``frames`` (one size, even sides) to ``path``; ``rotation``: display-matrix degrees."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 1.0, video_stream: bool = False, fmt: str | None = None) -> Path:
    """A file of silence (AAC); with ``video_stream`` it also declares an H.264 stream that has no frames."""
    rate = 16000
    with av.open(str(path), "w", format=fmt) as container:
        if video_stream:
            v = container.add_stream("libx264", rate=10)
            v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        container.start_encoding()
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        samples.sample_rate = rate
        for i in range(int(seconds * rate / 1024)):
            samples.pts = i * 1024
            for packet in audio.encode(samples):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path
