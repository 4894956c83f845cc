"""Accuracy when faces are darker, duller or differently exposed than FER2013's, with and without
the histogram equalisation every face now goes through (``fer_demo.transforms.equalize_faces``).

    python benchmarks/photometric_robustness.py --data ../shared/data/fer2013 [--weights ...]

FER2013's faces are histogram-equalised already (per-face contrast 0.30 +- 0.02); a face cut from
a photo is not (the examples: 0.23-0.24), and the app's monitoring flags exactly that as drift.
This script changes PublicTest's faces the way photos differ (contrast, brightness, gamma) and
prints the accuracy of the model as served (equalised) and as it was before (not equalised), with
the temperature-free argmax, no TTA. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo import transforms  # noqa: E402
from fer_demo.weights import load_model  # noqa: E402
from train.data import load_split  # noqa: E402
from train.hardware import describe  # noqa: E402

CONDITIONS = [("FER2013 as is", 1.0, 0.0, 1.0), ("contrast x0.75", 0.75, 0.0, 1.0), ("contrast x0.6", 0.6, 0.0, 1.0),
              ("darker (-0.15)", 1.0, -0.15, 1.0), ("brighter (+0.15)", 1.0, 0.15, 1.0),
              ("gamma 0.6", 1.0, 0.0, 0.6), ("gamma 1.6", 1.0, 0.0, 1.6),
              ("dull and dark (x0.7, -0.1, gamma 1.3)", 0.7, -0.1, 1.3)]


def change(faces: torch.Tensor, contrast: float, brightness: float, gamma: float) -> torch.Tensor:
    x = faces.float() / 255.0
    mean = x.mean(dim=(1, 2), keepdim=True)
    x = ((x - mean) * contrast + mean + brightness).clamp(0, 1) ** gamma
    return (x * 255).round().to(torch.uint8)


@torch.no_grad()
def accuracy(model: torch.nn.Module, faces: torch.Tensor, labels: torch.Tensor, equalise: bool) -> float:
    off = (transforms.FACE_SIZE - transforms.INPUT_SIZE) // 2
    correct = 0
    for i in range(0, len(faces), 512):
        f = faces[i : i + 512]
        if equalise:
            x = transforms.eval_transform(f)  # the served path
        else:  # the path before equalisation: the same centre crop and normalisation
            crop = f[:, off : off + transforms.INPUT_SIZE, off : off + transforms.INPUT_SIZE]
            x = transforms.normalize(crop).unsqueeze(1)
        correct += int((model(x).argmax(1) == labels[i : i + 512]).sum())
    return correct / len(faces)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013"))
    p.add_argument("--weights", default=str(ROOT / "weights" / "fer_vgg19.safetensors"))
    args = p.parse_args(argv)
    model, _ = load_model(args.weights)
    model = model.float().eval()
    data = load_split(args.data, "test", progress=False)
    print(f"{describe(torch.device('cpu')).label}; {args.weights}; PublicTest, {len(data)} faces\n")
    print("| faces | contrast (mean std) | not equalised | equalised (served) |")
    print("|---|---:|---:|---:|")
    for name, c, b, g in CONDITIONS:
        faces = change(data.images, c, b, g)
        std = float((faces.float() / 255).std(dim=(1, 2)).mean())
        print(f"| {name} | {std:.3f} | {accuracy(model, faces, data.labels, False):.4f} | "
              f"{accuracy(model, faces, data.labels, True):.4f} |", flush=True)


if __name__ == "__main__":
    main()
