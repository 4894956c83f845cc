"""Video files: decode, sample, analyse frame by frame, and write the results.

``analyze_video(predictor, path)`` opens an MP4, MOV or WebM file with PyAV (which bundles FFmpeg,
libx264 included: no system FFmpeg needed), checks it against the caller's ``VideoLimits`` (the web
page: ``VideoLimits.web()``, file size and duration from ``fer_demo.limits``; locally, the CLI and
the Python API: none), decodes it, keeps frames at a chosen rate (default ``limits.VIDEO_DEFAULT_FPS`` per
second), turns each one upright (the display-matrix rotation phone videos carry), brings large
frames down to ``limits.VIDEO_MAX_SIDE``, and runs them through one ``fer_demo.frames.FrameAnalyzer``
(faces tracked across frames, probabilities smoothed over time). The result, ``VideoAnalysis``,
gives per-face records (CSV, JSON) and a timeline plot; with ``annotated_path`` the annotated
frames are encoded as an H.264 MP4 (yuv420p, even size, moov atom first) that browsers play.

Long videos: with ``keep_frames=False`` nothing grows with the video's length: each frame's records
go to ``on_frame`` (e.g. a ``RecordsCSV``) as soon as it is analysed, and the summary and timeline come
from per-face running totals and a timeline thinned to at most ``TIMELINE_POINTS`` points a face.

Frames are never written to disk, except into the annotated video the caller asked for.
A file this module cannot use raises ``InvalidVideoError`` with a message that says why.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from fer_demo import limits
from fer_demo.colours import expression_colour
from fer_demo.frames import FrameAnalyzer, FrameResult, annotate_frame, track_colour
from fer_demo.io import checked_size

# FFmpeg demuxer names this module accepts ("mov,mp4,..." reads MP4 and MOV, "matroska,webm" WebM and MKV).
CONTAINERS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm")
ACCEPTED = "MP4, MOV or WebM"
# How files of the accepted containers begin: an ISO-BMFF box ("ftyp", ...) at byte 4, or EBML's magic.
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
_EBML = b"\x1a\x45\xdf\xa3"
# The annotated video: libx264, a quick preset (a few ms a 640x480 frame) at near-visually-lossless quality.
ENCODER_OPTIONS = {"preset": "veryfast", "crf": "23"}
# Timeline plot: at most this many faces, one panel each (the ones seen in the most frames).
PLOT_MAX_FACES = 4
# A face's timeline keeps at most this many points (every other one is dropped when full, so a long
# video's plot covers all of it at a coarser step; the CSV/JSON records keep every frame).
TIMELINE_POINTS = 2000


@dataclass(frozen=True)
class VideoLimits:
    """What a caller accepts: the longest video in seconds and the largest file in bytes; None: any.

    The shared web page refuses long and large videos (``VideoLimits.web()``, from ``fer_demo.limits``);
    locally (the CLI, the Python API) the default is no limit: memory does not grow with the length
    when ``analyze_video`` runs with ``keep_frames=False``.
    """

    max_seconds: float | None = None
    max_bytes: int | None = None

    @classmethod
    def web(cls) -> VideoLimits:
        """The web page's limits (read from ``fer_demo.limits`` when called)."""
        return cls(limits.VIDEO_MAX_SECONDS, limits.VIDEO_MAX_UPLOAD_BYTES)

    def too_long(self, path: Path, seconds: float) -> InvalidVideoError:
        return InvalidVideoError(f"{path.name}: video too long ({seconds:.0f} s); at most {self.max_seconds:g} s are "
                                 "accepted here (cut it shorter, or analyse it on your own machine: "
                                 "python -m fer_demo VIDEO)")

ProgressCallback = Callable[[float], None]


class InvalidVideoError(ValueError):
    """The input is not a video this package can use (message says why and what is accepted)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as this module reads it.

    Attributes:
        width, height: size of the frames as analysed: upright and at most ``limits.VIDEO_MAX_SIDE``.
        source_width, source_height: the stored frame size (before rotation and downscaling).
        rotation: degrees counter-clockwise the frames are turned to be upright (0, 90, 180, -90).
        duration: seconds (from the container; 0.0 when it does not say).
        fps: the stream's average frame rate (0.0 when unknown).
        codec: the video codec's name ("h264", "vp9", ...); container: FFmpeg's demuxer name.
    """

    width: int
    height: int
    source_width: int
    source_height: int
    rotation: int
    duration: float
    fps: float
    codec: str
    container: str

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "rotation": self.rotation,
                "duration": round(self.duration, 3), "fps": round(self.fps, 3), "codec": self.codec,
                "container": self.container}


def check_fps(fps: float) -> float:
    """A sampling rate in (0, ``limits.VIDEO_MAX_FPS``] frames per second, as float.

    Raises:
        ValueError: anything else.
    """
    fps = float(fps)
    if not (math.isfinite(fps) and 0 < fps <= limits.VIDEO_MAX_FPS):
        raise ValueError(f"Invalid sampling rate {fps:g} frames/s. It must be above 0 and at most "
                         f"{limits.VIDEO_MAX_FPS} frames/s.")
    return fps


def detect_every_for(fps: float) -> int:
    """How many sampled frames apart the face detector runs at ``fps`` (``limits.VIDEO_DETECT_EVERY_S``)."""
    return max(1, round(fps * limits.VIDEO_DETECT_EVERY_S))


def _check_file(path: Path, bounds: VideoLimits) -> None:
    max_bytes = bounds.max_bytes if bounds.max_bytes is not None else math.inf
    if checked_size(path, max_bytes, InvalidVideoError, path.name) == 0:
        raise InvalidVideoError(f"{path.name}: the file is empty; expected a {ACCEPTED} video")


def _looks_like_video(path: Path) -> bool:
    """Whether the file starts like an MP4/MOV or WebM/MKV (so a failure to open it means damage)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    return head[4:8] in _ISO_BOXES or head.startswith(_EBML)


def _open(path: Path, bounds: VideoLimits) -> av.container.InputContainer:
    _check_file(path, bounds)
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError:
        if _looks_like_video(path):
            raise InvalidVideoError(f"{path.name}: the video is truncated or damaged and cannot be read "
                                    "(was the upload or recording cut short?)") from None
        raise InvalidVideoError(f"{path.name}: not a video; {ACCEPTED} files are accepted") from None
    if container.format.name not in CONTAINERS:
        name = container.format.name
        container.close()
        raise InvalidVideoError(f"{path.name}: not a video file this app reads ({name}); "
                                f"{ACCEPTED} files are accepted")
    return container


def _output_size(width: int, height: int, rotation: int) -> tuple[int, int, int, int]:
    """(decode width, decode height, upright width, upright height): within VIDEO_MAX_SIDE, even when scaled."""
    scale = min(1.0, limits.VIDEO_MAX_SIDE / max(width, height))
    if scale < 1.0:
        width, height = max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))
    upright = (height, width) if rotation % 180 else (width, height)
    return width, height, *upright


def _rotation_of(frame: av.VideoFrame) -> int:
    """The frame's display rotation rounded to a quarter turn (degrees counter-clockwise)."""
    try:
        angle = frame.rotation
    except (AttributeError, ValueError):
        return 0
    return int(90 * round((angle or 0) / 90)) % 360


def _info(path: Path, container: av.container.InputContainer, bounds: VideoLimits
          ) -> tuple[VideoInfo, av.video.stream.VideoStream]:
    if not container.streams.video:
        raise InvalidVideoError(f"{path.name}: has no video stream (audio only?); expected a {ACCEPTED} video")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None:
        raise InvalidVideoError(f"{path.name}: its video codec is not supported (no decoder for it); "
                                "H.264, H.265, VP8, VP9 and AV1 videos are")
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    if bounds.max_seconds is not None and duration > bounds.max_seconds + 0.5:
        raise bounds.too_long(path, duration)
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width * height > limits.MAX_PIXELS:
        raise InvalidVideoError(f"{path.name}: frames too large ({width}x{height}); at most "
                                f"{limits.MAX_PIXELS / 1e6:.0f} megapixels are accepted")
    rate = stream.average_rate or stream.guessed_rate
    info = VideoInfo(width=width, height=height, source_width=width, source_height=height, rotation=0,
                     duration=duration, fps=float(rate) if rate else 0.0, codec=ctx.name,
                     container=container.format.name)
    return info, stream


def probe_video(path: str | Path, bounds: VideoLimits | None = None) -> VideoInfo:
    """Open a video and check it against ``bounds`` (default: no length or size limit), without decoding it.

    ``width``/``height``/``rotation`` are the stored ones here (the rotation is read from the frames,
    so ``read_frames`` and ``analyze_video`` report the upright size).

    Raises:
        InvalidVideoError: missing, empty, too large, not a video, truncated, no video stream, too long,
            or a codec without a decoder.
    """
    path = Path(path)
    bounds = bounds or VideoLimits()
    with _open(path, bounds) as container:
        return _info(path, container, bounds)[0]


@dataclass(frozen=True, eq=False)
class SampledFrame:
    """One frame kept by ``read_frames``: its number among the kept frames, time (s), uint8 (H, W, 3) RGB."""

    index: int
    t: float
    rgb: np.ndarray


def read_frames(path: str | Path, fps: float = limits.VIDEO_DEFAULT_FPS,
                info_out: list[VideoInfo] | None = None, bounds: VideoLimits | None = None) -> Iterator[SampledFrame]:
    """Decode a video and yield its frames at ``fps`` frames per second, upright, at most VIDEO_MAX_SIDE.

    Frames are kept at times 0, 1/fps, 2/fps, ... (the first frame at or after each, counted from the
    stream's first frame); a video slower than ``fps`` yields every frame. ``info_out``, when given,
    receives the ``VideoInfo`` with the upright size once the first frame is decoded.

    Raises:
        InvalidVideoError: as ``probe_video``, and: no frame could be decoded, the video is damaged
            part way, or it turns out longer than ``bounds.max_seconds`` (default: no limit).
        ValueError: ``fps`` out of range (``check_fps``).
    """
    fps = check_fps(fps)
    path = Path(path)
    bounds = bounds or VideoLimits()
    with _open(path, bounds) as container:
        info, stream = _info(path, container, bounds)
        stream.thread_type = "AUTO"  # frame-threaded decoding on both cores
        t0: float | None = None
        next_slot = 0
        kept = 0
        size: tuple[int, int, int, int] | None = None
        try:
            for n, frame in enumerate(container.decode(stream)):
                if frame.time is not None:
                    t_abs = float(frame.time)
                else:
                    t_abs = n / info.fps if info.fps else float(n)
                if t0 is None:
                    t0 = t_abs
                t = t_abs - t0
                if bounds.max_seconds is not None and t > bounds.max_seconds + 0.5:
                    raise bounds.too_long(path, t)
                slot = math.floor(t * fps + 1e-6)
                if slot < next_slot:
                    continue
                next_slot = slot + 1
                rotation = _rotation_of(frame)
                if size is None:
                    size = _output_size(frame.width, frame.height, rotation)
                    info = replace(info, width=size[2], height=size[3], source_width=frame.width,
                                   source_height=frame.height, rotation=rotation)
                    if info_out is not None:
                        info_out.append(info)
                rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                if rotation:
                    rgb = np.ascontiguousarray(np.rot90(rgb, rotation // 90))
                yield SampledFrame(kept, t, rgb)
                kept += 1
        except av.error.FFmpegError as e:
            raise InvalidVideoError(f"{path.name}: the video is damaged and could not be decoded "
                                    f"after {kept} frames ({e.strerror or type(e).__name__})") from None
        if kept == 0:
            raise InvalidVideoError(f"{path.name}: the video has no frames that could be decoded")


class AnnotatedWriter:
    """Encodes RGB frames into an H.264 MP4 that browsers play (yuv420p, even size, moov atom first).

    Use as a context manager; ``write(rgb, t)`` takes uint8 (H, W, 3) frames of one size at increasing
    times ``t`` (seconds); odd sizes lose their last row/column. Frames are timed by ``t`` at ``fps``
    resolution, so the video lasts as long as the source.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1000)
        self._container = av.open(str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"})
        self._stream: av.video.stream.VideoStream | None = None
        self._last_pts = -1

    def write(self, rgb: np.ndarray, t: float) -> None:
        h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=self.fps, options=dict(ENCODER_OPTIONS))
            self._stream.width, self._stream.height, self._stream.pix_fmt = w, h, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
        pts = max(self._last_pts + 1, round(t * self.fps))
        frame.pts, self._last_pts = pts, pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> AnnotatedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


CSV_HEAD = ["frame", "time", "face", "x1", "y1", "x2", "y2", "label"]


class RecordsCSV:
    """Writes each frame's records to a CSV file as it comes (``write(result)``), so a long video's
    records are on disk, not in memory. Columns: frame, time, face, x1, y1, x2, y2, label, then one
    probability column per class (smoothed). A context manager; ``on_frame=csv.write`` for ``analyze_video``."""

    def __init__(self, path: str | Path, classes: tuple[str, ...] | list[str]) -> None:
        self.path, self.classes = Path(path), tuple(classes)
        self._fh = open(self.path, "w", newline="")
        self._writer = csv.writer(self._fh)
        self._writer.writerow([*CSV_HEAD, *self.classes])

    def write(self, result: FrameResult) -> None:
        for r in result.to_dicts():
            self._writer.writerow([r["frame"], r["time"], r["face"], *r["box"], r["label"],
                                   *(r["probabilities"][c] for c in self.classes)])

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> RecordsCSV:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(eq=False)
class TrackStats:
    """One face over a whole video, in memory that does not grow with its length: frames seen, the sum
    of its (smoothed) probabilities, its largest box area, and its timeline thinned to at most
    ``TIMELINE_POINTS`` points (every ``stride``-th frame it was seen in)."""

    frames: int = 0
    prob_sum: np.ndarray | None = None
    area: float = 0.0
    times: list[float] = field(default_factory=list)
    probs: list[np.ndarray] = field(default_factory=list)
    stride: int = 1

    def add(self, t: float, probabilities: np.ndarray, area: float) -> None:
        p = np.asarray(probabilities, dtype=np.float64)
        self.prob_sum = p.copy() if self.prob_sum is None else self.prob_sum + p
        self.area = max(self.area, float(area))
        if self.frames % self.stride == 0:
            self.times.append(float(t))
            self.probs.append(p.astype(np.float32))
            if len(self.times) >= TIMELINE_POINTS:
                self.times, self.probs, self.stride = self.times[::2], self.probs[::2], 2 * self.stride
        self.frames += 1

    @property
    def mean(self) -> np.ndarray:
        return self.prob_sum / max(1, self.frames)


def track_stats(frames: list[FrameResult]) -> dict[int, TrackStats]:
    """``TrackStats`` per track id from kept frames."""
    out: dict[int, TrackStats] = {}
    for f in frames:
        for face in f.faces:
            out.setdefault(face.track_id, TrackStats()).add(f.t, face.probabilities, face.area)
    return out


@dataclass(eq=False)
class VideoAnalysis:
    """The result for one video file.

    Attributes:
        info: the video (upright, analysed size).
        fps: the sampling rate used (frames per second).
        cam: the CAM method, or None.
        frames: one ``FrameResult`` per sampled frame, in time order (their heatmaps dropped).
        classes: the class names.
        seconds: wall time of the whole analysis (decoding, analysis, encoding).
        annotated: the annotated MP4, when one was asked for.
        stats: per track id, its ``TrackStats`` (what the summary and the timeline read: with
            ``keep_frames=False`` ``frames`` is empty and these are all there is).
    """

    info: VideoInfo
    fps: float
    cam: str | None
    frames: list[FrameResult]
    classes: tuple[str, ...]
    seconds: float
    annotated: Path | None = None
    detect_every: int = 1
    stats: dict[int, TrackStats] = field(default_factory=dict)
    frame_count: int | None = None  # sampled frames analysed (None: len(frames))

    def __post_init__(self) -> None:
        if not self.stats and self.frames:
            self.stats = track_stats(self.frames)
        if self.frame_count is None:
            self.frame_count = len(self.frames)

    def records(self) -> list[dict[str, Any]]:
        """One record per face per sampled frame: frame, time, face, box, label, probabilities (smoothed).
        Empty when the frames were not kept (``keep_frames=False``: the records went to ``on_frame``)."""
        return [r for f in self.frames for r in f.to_dicts()]

    def tracks(self) -> dict[int, list[tuple[float, np.ndarray]]]:
        """Track id -> [(time, smoothed probabilities (C,))] over the whole video (thinned to at most
        ``TIMELINE_POINTS`` points a face)."""
        return {tid: list(zip(st.times, st.probs)) for tid, st in self.stats.items()}

    def summary(self) -> str:
        """One line: frames, faces, each face's most frequent label, speed."""
        tracks = self.stats
        n = self.frame_count
        if not tracks:
            faces = "no face found"
        else:
            parts = []
            for tid, st in sorted(tracks.items()):
                parts.append(f"face {tid}: mostly {self.classes[int(np.argmax(st.mean))]} ({st.frames} frames)")
            faces = f"{len(tracks)} face{'s' if len(tracks) != 1 else ''} (" + "; ".join(parts) + ")"
        speed = self.info.duration / self.seconds if self.seconds > 0 and self.info.duration > 0 else 0.0
        capped = (f" The timeline plots the {PLOT_MAX_FACES} faces seen in the most frames; all {len(tracks)} are "
                  "in the CSV and JSON." if len(tracks) > PLOT_MAX_FACES else "")
        return (f"{n} frames analysed at {self.fps:g} frames/s from {self.info.duration:.1f} s of video: {faces}. "
                f"Took {self.seconds:.1f} s ({speed:.1f}x real time).{capped}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the video, the settings, one record per face per frame, the summary."""
        return {"video": self.info.to_dict(), "fps": self.fps, "cam": self.cam, "frames": self.frame_count,
                "faces": len(self.stats), "classes": list(self.classes), "seconds": round(self.seconds, 3),
                "summary": self.summary(), "records": self.records()}

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    def write_csv(self, path: str | Path) -> Path:
        """Columns: frame, time, face, x1, y1, x2, y2, label, then one probability column per class."""
        with RecordsCSV(path, self.classes) as out:
            for f in self.frames:
                out.write(f)
        return out.path

    def timeline_figure(self, max_faces: int = PLOT_MAX_FACES):
        """A matplotlib ``Figure``: each face's smoothed probabilities over time, one panel per face.

        The ``max_faces`` faces seen in the most frames are shown (ties: the larger face); when there
        are more, the figure's title says how many of how many. A video without faces gets one empty
        panel that says so.
        """
        from matplotlib.figure import Figure

        tracks = self.tracks()
        shown = sorted(tracks, key=lambda k: (-self.stats[k].frames, -self.stats[k].area))[:max_faces]
        shown.sort()
        rows = max(1, len(shown))
        fig = Figure(figsize=(8, 1.2 + 1.9 * rows), layout="constrained")
        axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
        end = max(self.info.duration, self.frames[-1].t if self.frames else 0.0, 1e-3)
        if not shown:
            axes[0].text(0.5, 0.5, "no face found", ha="center", va="center", transform=axes[0].transAxes)
        for ax, tid in zip(axes, shown):
            times = [t for t, _ in tracks[tid]]
            probs = np.array([p for _, p in tracks[tid]])
            for k, name in enumerate(self.classes):
                ax.plot(times, probs[:, k], ".-" if len(times) < 3 else "-", color=expression_colour(name, k),
                        label=name, linewidth=1.6, markersize=4)
            ax.set_title(f"face {tid}", loc="right", fontsize=10, color=track_colour(tid))
            ax.set_ylabel("probability")
        for ax in axes:
            ax.set_ylim(0, 1)
            ax.set_xlim(0, end)
            ax.grid(alpha=0.3)
        axes[-1].set_xlabel("time (s)")
        if len(tracks) > len(shown):
            fig.suptitle(f"{len(shown)} of {len(tracks)} faces shown: the ones seen in the most frames "
                         "(all are in the CSV and JSON)", fontsize=10)
        if shown:
            axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                           handlelength=1.2)
        return fig

    def save_timeline(self, path: str | Path) -> Path:
        path = Path(path)
        self.timeline_figure().savefig(path, dpi=100)
        return path


def analyze_video(
    predictor,
    path: str | Path,
    fps: float = limits.VIDEO_DEFAULT_FPS,
    cam: str | None = None,
    annotated_path: str | Path | None = None,
    progress: ProgressCallback | None = None,
    detect_every: int | None = None,
    on_frame: Callable[[FrameResult], None] | None = None,
    bounds: VideoLimits | None = None,
    keep_frames: bool = True,
) -> VideoAnalysis:
    """Analyse every sampled frame of a video file.

    Args:
        predictor: a loaded ``fer_demo.pipeline.Predictor``.
        path: an MP4, MOV or WebM file within the ``limits.VIDEO_*`` limits.
        fps: frames analysed per second of video, in (0, ``limits.VIDEO_MAX_FPS``].
        cam: a CAM method for a heatmap per face (drawn into the annotated video), or None / "none".
        annotated_path: where to write the annotated H.264 MP4; None: no video is written.
        progress: called with the fraction of the video done, in [0, 1], after each sampled frame.
        detect_every: sampled frames between face detections (default ``detect_every_for(fps)``).
        on_frame: called with each ``FrameResult`` (heatmaps still set) as soon as it is ready.
        bounds: the longest video and largest file accepted (default: none; the web page passes
            ``VideoLimits.web()``).
        keep_frames: keep every ``FrameResult`` in ``VideoAnalysis.frames``; False for long videos:
            memory stays flat, the records go only to ``on_frame`` (e.g. ``RecordsCSV.write``).

    Returns:
        A ``VideoAnalysis``; frames without faces have empty ``faces``.

    Raises:
        InvalidVideoError: the file cannot be used (message says why).
        ValueError: an invalid ``fps``, ``cam`` or ``detect_every``.
    """
    start = time.perf_counter()
    fps = check_fps(fps)
    detect_every = detect_every_for(fps) if detect_every is None else int(detect_every)
    analyzer = FrameAnalyzer(predictor, detect_every=detect_every, cam=cam)
    infos: list[VideoInfo] = []
    frames: list[FrameResult] = []
    stats: dict[int, TrackStats] = {}
    count = 0
    writer = AnnotatedWriter(annotated_path, fps) if annotated_path is not None else None
    ok = False
    batch: list[SampledFrame] = []

    def flush() -> None:
        nonlocal count
        # The frames of one detection interval are classified in one batch (FrameAnalyzer.process_many).
        results = analyzer.process_many([s.rgb for s in batch], [s.t for s in batch], [s.index for s in batch])
        for sample, result in zip(batch, results):
            if on_frame is not None:
                on_frame(result)
            if writer is not None:
                writer.write(annotate_frame(sample.rgb, result, analyzer.classes, show_cam=analyzer.cam is not None),
                             sample.t)
            for face in result.faces:  # keep the numbers, not the pixels
                face.heatmap = None
                stats.setdefault(face.track_id, TrackStats()).add(result.t, face.probabilities, face.area)
            count += 1
            if keep_frames:
                frames.append(result)
            if progress is not None and infos and infos[0].duration > 0:
                progress(min(1.0, sample.t / infos[0].duration))
        batch.clear()

    try:
        for sample in read_frames(path, fps, info_out=infos, bounds=bounds):
            batch.append(sample)
            if len(batch) >= detect_every:
                flush()
        if batch:
            flush()
        ok = True
    finally:
        if writer is not None:
            writer.close()
            if not ok:  # no half-written video left behind
                Path(annotated_path).unlink(missing_ok=True)
    if progress is not None:
        progress(1.0)
    return VideoAnalysis(info=infos[0], fps=fps, cam=analyzer.cam, frames=frames, classes=analyzer.classes,
                         seconds=time.perf_counter() - start,
                         annotated=None if annotated_path is None else Path(annotated_path),
                         detect_every=detect_every, stats=stats, frame_count=count)
