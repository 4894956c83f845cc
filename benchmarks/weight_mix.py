"""Weight averages ("soups") and probability ensembles of releases, scored on PublicTest and sfew-dev.

    python benchmarks/weight_mix.py --data ../shared/data/fer2013 --votes ../shared/data/ferplus/votes.csv \\
        --photos ../shared/data/sfew-dev \\
        --model base=/tmp/weights_d550/fer_vgg19.safetensors --model ep4=~/fer-runs/ftA/epochs/epoch_004.safetensors \\
        --soup base+ep4 --soup 0.3*base+0.7*ep4 --ensemble base+ep4

``--model NAME=PATH`` names a release (a ``.safetensors`` with its ``.json`` card; every one the same
architecture). ``--soup`` averages their weights (``0.3*a+0.7*b``; no weights = equal shares) and
recomputes the BatchNorm statistics on 4,096 training faces (``torch.optim.swa_utils.update_bn``:
averaged running statistics do not belong to averaged weights); ``--ensemble`` averages their
softmax probabilities. Every named model is scored alone too.

Scores, per model: PublicTest accuracy (FER2013 labels; and FER+ majority labels with ``--votes``),
and with ``--photos`` (a ``ROOT/<class>/`` folder) the whole pipeline's sfew-dev figures: accuracy
(no face = wrong), balanced accuracy, per-class recall and the most-predicted share. The faces are
found and aligned once, by the app's ``Predictor`` (largest face per photo, as
``benchmarks/real_photos.py`` scores it); the classifiers then run in fp32 without temperature or
TTA, so a handful of answers can differ from the served bf16 network's. For exploring what a
mix buys; a release's own figures come from ``python -m train robustness``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_demo.model import EMOTIONS, FACE_SIZE  # noqa: E402
from fer_demo.transforms import eval_transform  # noqa: E402
from fer_demo.weights import load_model  # noqa: E402
from train.data import load_split  # noqa: E402
from train.publictest import ferplus_majority  # noqa: E402
from train.real_photos import labelled_photos, largest  # noqa: E402
from train.scoring import NO_FACE, score_photos  # noqa: E402

BN_FACES = 4096


def parse_mix(text: str, names: list[str]) -> dict[str, float]:
    """``"0.3*a+0.7*b"`` or ``"a+b"`` (equal shares) -> {name: share}; the shares must sum to 1."""
    parts = [p.split("*") if "*" in p else (None, p) for p in text.split("+")]
    unknown = [n for _, n in parts if n not in names]
    if unknown:
        raise SystemExit(f"{text}: unknown model(s) {unknown}; named with --model: {names}")
    mix = {n: float(w) if w is not None else 1 / len(parts) for w, n in parts}
    if abs(sum(mix.values()) - 1) > 1e-6:
        raise SystemExit(f"{text}: the shares sum to {sum(mix.values()):g}, not 1")
    return mix


def load_states(paths: dict[str, str]) -> tuple[dict[str, dict[str, torch.Tensor]], torch.nn.Module]:
    """({name: float32 state dict}, a model to load them into). The states are copies: loading one
    into the model never changes another (a float32 model's ``state_dict()`` shares its tensors)."""
    states, model = {}, None
    for name, path in paths.items():
        m, _ = load_model(Path(path).expanduser())
        states[name] = {k: t.detach().float().clone() for k, t in m.state_dict().items()}
        model = m if model is None else model
    return states, model


def photo_faces(photos: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 (N, 48, 48) largest face per photo, labels (N,), found (N,) bool); zeros where no face.

    Each face is ``FaceResult.aligned``: exactly what the app's classifier received for it (the
    network's own preprocessing, ``fer_demo.transforms``, is applied to it here as there)."""
    from fer_demo.pipeline import Predictor

    pred = Predictor(abstain=False)
    grays, ys, found = [], [], []
    for path, y in labelled_photos(photos):
        face = largest(pred.analyze(path, cam=None).faces)
        ys.append(y)
        found.append(face is not None)
        grays.append(face.aligned if face is not None else np.zeros((FACE_SIZE, FACE_SIZE), np.uint8))
    return np.stack(grays), np.array(ys), np.array(found)


def probabilities(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([torch.softmax(model(x[i:i + 512]), 1) for i in range(0, len(x), 512)]).numpy()


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="FER2013 folder root (train/ for BatchNorm, test/ scored)")
    p.add_argument("--votes", type=Path, default=None, help="path-keyed FER+ votes.csv: also score FER+ majority labels")
    p.add_argument("--photos", type=Path, default=None, help="ROOT/<class>/ photos scored through the pipeline")
    p.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    p.add_argument("--soup", action="append", default=[], metavar="MIX")
    p.add_argument("--ensemble", action="append", default=[], metavar="MIX")
    args = p.parse_args(argv)

    states, model = load_states(dict(m.split("=", 1) for m in args.model))
    test = load_split(args.data, "test", progress=False)
    x_test, y_test = eval_transform(torch.as_tensor(test.images)), np.asarray(test.labels)
    fp = ferplus_majority(args.data, args.votes) if args.votes else None
    if args.photos:
        gray, y_photo, found = photo_faces(args.photos)
        x_photo = eval_transform(torch.as_tensor(gray))
    train = load_split(args.data, "train", progress=False)
    idx = torch.randperm(len(train.images), generator=torch.Generator().manual_seed(2))[:BN_FACES]
    x_bn = eval_transform(torch.as_tensor(train.images[idx]))

    probs: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}

    def run(name: str, state: dict, recompute_bn: bool) -> None:
        model.load_state_dict(state)
        if recompute_bn:
            torch.optim.swa_utils.update_bn([x_bn[i:i + 256] for i in range(0, len(x_bn), 256)], model)
        model.eval()
        probs[name] = (probabilities(model, x_test), probabilities(model, x_photo) if args.photos else None)

    for n in states:
        run(n, states[n], recompute_bn=False)
    for text in args.soup:
        mix = parse_mix(text, list(states))
        avg = {k: sum(w * states[n][k] for n, w in mix.items()) if t.is_floating_point() else t
               for k, t in next(iter(states.values())).items()}
        run(f"soup {text}", avg, recompute_bn=True)
    for text in args.ensemble:
        mix = parse_mix(text, list(states))
        pt = sum(w * probs[n][0] for n, w in mix.items())
        pp = sum(w * probs[n][1] for n, w in mix.items()) if args.photos else None
        probs[f"ensemble {text}"] = (pt, pp)

    rows = []
    print("| model | PublicTest | FER+ majority | sfew-dev | balanced | recall (" + " / ".join(EMOTIONS)
          + ") | most predicted |\n|---|---:|---:|---:|---:|---|---:|")
    for name, (pt, pp) in probs.items():
        pred_t = pt.argmax(1)
        row = {"model": name, "publictest": float((pred_t == y_test).mean())}
        if fp is not None:
            row["ferplus_majority"] = float((pred_t[fp >= 0] == fp[fp >= 0]).mean())
        if pp is not None:
            s = score_photos(y_photo, np.where(found, pp.argmax(1), NO_FACE))
            row.update(sfew=s.accuracy, balanced=s.balanced_accuracy, recall=s.recall,
                       most_predicted=f"{s.most_predicted} {100 * s.most_predicted_share:.1f}%")
        rows.append(row)
        print(f"| {name} | {row['publictest']:.4f} | {row.get('ferplus_majority', float('nan')):.3f} | "
              + (f"{row['sfew']:.3f} | {row['balanced']:.3f} | " + " / ".join(f"{v:.2f}" for v in row["recall"].values())
                 + f" | {row['most_predicted']} |" if pp is not None else " | | | |"), flush=True)
    return rows


if __name__ == "__main__":
    main()
