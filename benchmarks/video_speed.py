"""Video-file speed (real-time factor) and the per-frame rate the live mode gets, on this machine.

    python benchmarks/video_speed.py                       # a generated 10 s 640x480 clip, one face
    python benchmarks/video_speed.py --clip my.mp4 --fps 5 --repeats 3

1. Video file: ``fer_demo.video.analyze_video`` end to end (decode + detect every few sampled frames +
   align + classify + track), labels only, at ``--fps`` sampled frames per second. Prints the wall time
   and the real-time factor (video seconds per second of processing). The floor (issue 21): a 10 s
   clip at 5 fps in <= 0.83 s (>= 12x real time) on a 2-core CPU.
2. Per-frame rate of ``fer_demo.frames.FrameAnalyzer`` + ``annotate_frame`` on 640x480 frames, labels
   only and with a CAM, at the live mode's detection interval: the floors are >= 10 frames/s labels
   only and >= 5 frames/s with the CAM overlay. Also the cost of each stage (detect / classify / CAM).

Run it on an otherwise idle machine; the load average is printed with the numbers, and the CPU time
(all of this process's threads) beside the wall time: under load it stays closer to what the work costs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo import limits
from fer_demo.frames import FrameAnalyzer, annotate_frame
from fer_demo.pipeline import Predictor
from fer_demo.ui.options import DEFAULT_CAM
from fer_demo.video import AnnotatedWriter, analyze_video

EXAMPLES = ROOT / "examples"
WIDTH, HEIGHT = 640, 480
FLOOR_REALTIME = 12.0
FLOOR_FPS_LABELS, FLOOR_FPS_CAM = 10.0, 5.0


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", type=Path, default=None, help="a video to time [default: a generated 10 s clip]")
    p.add_argument("--fps", type=float, default=limits.VIDEO_DEFAULT_FPS, help="sampled frames per second")
    p.add_argument("--repeats", type=int, default=2, help="runs of the video (the best is reported)")
    p.add_argument("--frames", type=int, default=60, help="frames for the per-frame rate")
    p.add_argument("--cam", default=DEFAULT_CAM, help="CAM method for the per-frame rate with CAM")
    p.add_argument("--detect-every", type=int, default=getattr(limits, "LIVE_DETECT_EVERY", 3),
                   help="detection interval (frames) for the per-frame rate [default: the live mode's]")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    return p


def moving_face_frames(n: int, seconds: float) -> list[np.ndarray]:
    """``n`` 640x480 frames: the astronaut's head and shoulders drifting slowly across a gray background."""
    photo = Image.open(EXAMPLES / "astronaut.jpg").convert("RGB").resize((320, 320))
    face = np.asarray(photo)
    frames = []
    for k in range(n):
        x = int(80 + 160 * (k / max(1, n - 1)))  # 160 px over the clip
        y = int(80 + 20 * np.sin(2 * np.pi * k / max(1, n) * seconds / 5))
        frame = np.full((HEIGHT, WIDTH, 3), 110, np.uint8)
        frame[y:y + 320, x:x + 320] = face
        frames.append(frame)
    return frames


def write_clip(path: Path, seconds: float = 10.0, rate: int = 25) -> Path:
    """An H.264 clip of ``moving_face_frames`` at ``rate`` frames/s (the app's own video writer)."""
    with AnnotatedWriter(path, rate) as writer:
        for i, frame in enumerate(moving_face_frames(int(seconds * rate), seconds)):
            writer.write(frame, i / rate)
    return path


def per_frame_rate(predictor: Predictor, frames: list[np.ndarray], cam: str | None,
                   every: int) -> tuple[float, float, float]:
    """(frames per second of process + annotate, wall ms per frame, CPU ms per frame) at 15 frames/s of stream time."""
    analyzer = FrameAnalyzer(predictor, detect_every=every, cam=cam)
    analyzer.process(frames[0], 0.0)  # warm-up
    analyzer.reset()
    start, cpu = time.perf_counter(), time.process_time()
    for k, frame in enumerate(frames):
        result = analyzer.process(frame, k / 15)
        annotate_frame(frame, result, analyzer.classes, show_cam=cam is not None)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(frames) / seconds, 1000 * seconds / len(frames), 1000 * cpu / len(frames)


def stage_ms(predictor: Predictor, frame: np.ndarray, cam: str, repeats: int = 10) -> dict[str, float]:
    faces = predictor.detector.detect(frame)

    def median_ms(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            s = time.perf_counter()
            fn()
            times.append(time.perf_counter() - s)
        return 1000 * float(np.median(times))

    return {"detect": median_ms(lambda: predictor.detector.detect(frame)),
            "align + classify": median_ms(lambda: predictor.analyze_faces(frame, faces, overlays=False)),
            f"align + classify + {cam}": median_ms(lambda: predictor.analyze_faces(frame, faces, cam=cam,
                                                                                    overlays=False))}


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    print("$ python benchmarks/video_speed.py " + " ".join(sys.argv[1:] if argv is None else argv))
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = Predictor()
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or write_clip(Path(tmp) / "clip.mp4")
        analyze_video(predictor, clip, fps=args.fps)  # warm-up
        best, cpu = None, 0.0
        for _ in range(max(1, args.repeats)):
            c = time.process_time()
            analysis = analyze_video(predictor, clip, fps=args.fps)
            if best is None or analysis.seconds < best.seconds:
                best, cpu = analysis, time.process_time() - c
    assert best is not None
    factor = best.info.duration / best.seconds
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"video file: {best.info.duration:.1f} s {best.info.width}x{best.info.height} {best.info.codec}, "
          f"{len(best.frames)} frames at {best.fps:g} fps, detector every {best.detect_every} sampled frames, "
          f"labels only: {best.seconds:.2f} s = {factor:.1f}x real time, CPU time {cpu:.2f} s "
          f"({'meets' if factor >= FLOOR_REALTIME else 'MISSES'} the {FLOOR_REALTIME:g}x floor)")
    frames = moving_face_frames(args.frames, args.frames / 15)
    for name, cam, floor in (("labels only", None, FLOOR_FPS_LABELS), (f"with {args.cam}", args.cam, FLOOR_FPS_CAM)):
        rate, ms, cpu_ms = per_frame_rate(predictor, frames, cam, args.detect_every)
        print(f"per frame 640x480, detector every {args.detect_every} frames, {name}: {rate:.1f} frames/s "
              f"({ms:.0f} ms/frame, CPU {cpu_ms:.0f} ms/frame; {'meets' if rate >= floor else 'MISSES'} the "
              f"{floor:g} frames/s floor)")
    stages = stage_ms(predictor, frames[0], args.cam)
    print("stages, ms (median, one face, 640x480): " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
