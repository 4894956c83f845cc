"""The exported ONNX files (fp32, int8) in onnxruntime against the app's own classifier, per face.

    python -m train export-onnx --out /tmp/fer/fer_vgg19.onnx --data ../shared/data/fer2013 --int8
    python benchmarks/onnx_speed.py --onnx /tmp/fer/fer_vgg19.onnx            # 200 rounds, 20 warm-up

One face at a time (batch 1), from the uint8 48x48 aligned face to its 7 probabilities, as an app
would call it: ``fer_demo.transforms.eval_transform``, the network, softmax(logits / T). Rows:
- ``EmotionClassifier.predict`` (``fer_demo.classify``: ``FastNet``, its default precision on this
  CPU, the path the app serves) with torch's intra-op threads set to 1 and 2;
- onnxruntime (CPUExecutionProvider, default graph optimisation) on ``--onnx`` (fp32) and its
  ``.int8.onnx`` sibling (``train.onnx_export.int8_path``), ``intra_op_num_threads`` 1 and 2.
All rows are interleaved round by round (so load from anything else on the machine hits them alike);
after ``--warmup`` untimed rounds it prints the median (and 90th percentile) ms per face of each and
its speed relative to the app's classifier at the same thread count. The faces are seeded random
pixels (the networks' cost does not depend on what the face shows).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo.classify import EmotionClassifier  # noqa: E402
from fer_demo.transforms import eval_transform  # noqa: E402
from train.hardware import cpu_model_name  # noqa: E402
from train.onnx_export import int8_path  # noqa: E402


def onnx_runner(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    temperature = float(session.get_modelmeta().custom_metadata_map.get("temperature", 1.0))

    def run(face: np.ndarray) -> np.ndarray:
        x = eval_transform(torch.from_numpy(face)).numpy()
        logits = session.run(["logits"], {"faces": x})[0] / temperature
        p = np.exp(logits - logits.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    return run


def app_runner(classifier: EmotionClassifier, threads: int):
    def run(face: np.ndarray) -> np.ndarray:
        torch.set_num_threads(threads)
        return classifier.predict(face)

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx", required=True, help="the fp32 .onnx file; its .int8.onnx sibling is timed too")
    p.add_argument("--weights", default=str(ROOT / "weights" / "fer_vgg19.safetensors"), help="the release")
    p.add_argument("--rounds", type=int, default=200, help="timed rounds per row [200]")
    p.add_argument("--warmup", type=int, default=20, help="untimed rounds first [20]")
    args = p.parse_args(argv)
    fp32 = Path(args.onnx)
    int8 = int8_path(fp32)
    for f in (fp32, int8):
        if not f.is_file():
            print(f"error: {f} not found; write both with: python -m train export-onnx --out {fp32} "
                  "--data ../shared/data/fer2013 --int8", file=sys.stderr)
            return 2
    try:
        import onnxruntime as ort
    except ImportError:
        print("error: needs onnxruntime: pip install -r requirements-onnx.txt -c requirements.lock", file=sys.stderr)
        return 2

    classifier = EmotionClassifier(args.weights)
    rows = {}
    for threads in (1, 2):
        rows[f"app classifier ({classifier.precision}), {threads} thread(s)"] = app_runner(classifier, threads)
        rows[f"onnxruntime fp32, {threads} thread(s)"] = onnx_runner(fp32, threads)
        rows[f"onnxruntime int8, {threads} thread(s)"] = onnx_runner(int8, threads)
    faces = np.random.default_rng(0).integers(0, 256, (16, 1, 48, 48), dtype=np.uint8)
    times: dict[str, list[float]] = {name: [] for name in rows}
    for r in range(args.warmup + args.rounds):
        face = faces[r % len(faces)]
        for name, run in rows.items():
            t = time.perf_counter()
            run(face)
            if r >= args.warmup:
                times[name].append((time.perf_counter() - t) * 1000)
    torch.set_num_threads(os.cpu_count() or 1)

    print(f"CPU: {cpu_model_name()} ({os.cpu_count()} logical CPUs); torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"batch 1, median of {args.rounds} interleaved rounds after {args.warmup} warm-up, ms per face "
          "(uint8 48x48 face -> probabilities)\n")
    print("| path | median ms | p90 ms | vs app classifier |")
    print("|---|---:|---:|---:|")
    for name, ts in times.items():
        threads = name.rsplit(", ", 1)[1]
        base = np.median(next(v for k, v in times.items() if k.startswith("app") and k.endswith(threads)))
        med = np.median(ts)
        print(f"| {name} | {med:.2f} | {np.percentile(ts, 90):.2f} | {base / med:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
