"""Training configuration: a frozen dataclass whose defaults are the release recipe."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainConfig:
    data: str = "../shared/data/fer2013"  # FER2013 folder root or fer2013.csv
    out: str = "runs/release"  # run directory: config, history, checkpoints, metrics, export
    init: str = "scratch"  # "scratch", "imagenet" (torchvision's weights, locally) or a release .safetensors
    # Other labelled face folders: class folders that are not one of the 7 expressions (or an
    # alias, see train.data.CLASS_ALIASES) are an error unless this skips them.
    ignore_classes: bool = False
    # "cropped": the images are face crops (FER2013's way); "detect": folders of photos, each run
    # once through the app's detector and aligner (cached; train.photos).
    faces: str = "cropped"
    # FER+ relabelling (train.ferplus): the vote file fer2013new.csv for a --data fer2013.csv, and
    # which labels to train on: "majority" (one class per image) or "soft" (the vote distribution).
    # A folder --data takes the path-keyed votes.csv instead (train.votes), which also offers "mix":
    # the FER2013 label's one-hot mixed with ``ferplus_mix`` of the vote distribution.
    ferplus: str | None = None
    ferplus_labels: str = "majority"
    ferplus_mix: float = 0.5
    imagenet_weights: str | None = None  # explicit path to vgg19_bn-c79401a0.pth for --init imagenet
    # Schedule. A 2-vCPU AVX2 machine trains ~30 img/s at 40x40 (no fast bf16 there), so the
    # release schedule is short: one-cycle LR lets a short run converge (Smith & Topin 2017).
    epochs: int = 3
    batch_size: int = 64  # the global batch (split over torchrun processes); small: more updates per epoch
    # AdamW, not SGD: from scratch, VGG19-BN's gradient norm is ~30 at init and SGD at 0.01-0.03
    # oscillated at chance level for a whole epoch here; AdamW's per-weight scaling learns at once.
    optimizer: str = "adamw"  # "adamw" or "sgd" (Nesterov)
    lr: float = 1e-3  # one-cycle peak LR (AdamW; use ~0.01 for sgd)
    grad_clip: float = 5.0  # max global gradient norm: guards the un-normalised head early on
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.01  # decoupled (AdamW); the SGD recipes in the literature use 5e-4
    # LR schedule. "onecycle": warm up then cosine-anneal over the whole run (its length is
    # fixed at the start). "wsd" (warmup-stable-decay; Hägele et al. 2024): warm up, hold the
    # peak, then decay linearly over the last ``decay_frac`` of the steps. A long campaign
    # across sessions uses wsd: while it is in the constant phase its --epochs can still be
    # changed on --resume, so the run's length can follow the CPU time actually available.
    schedule: str = "onecycle"
    warmup_frac: float = 0.15  # share of steps spent warming up to the peak LR
    decay_frac: float = 0.2  # wsd only: share of steps in the final linear decay to ~0
    # Exponential moving average of the weights (and BatchNorm statistics), updated every step
    # and scored each epoch beside the raw weights; the better of the two is kept as best.
    # 0 = off. 0.999 averages over ~1,000 steps (~2 FER2013 epochs at batch 64).
    ema_decay: float = 0.0
    label_smoothing: float = 0.1  # guards against FER2013's noisy labels
    # Class imbalance: the loss weights class c by (n_max / n_c) ** power. 0 = plain CE,
    # 1 = fully inverse-frequency. Disgust has 436 images against happy's 7,215; a mild
    # power lifts disgust/fear recall without giving up much overall accuracy.
    class_weight_power: float = 0.3
    # Augmentation (see fer_demo.transforms.TrainAugment).
    max_rotation: float = 10.0
    scale_min: float = 0.9
    scale_max: float = 1.1
    max_shift: float = 4.0
    erase_p: float = 0.5
    # Photo-like corruptions (train.corruptions: blur, noise, JPEG, low resolution, dim, over-exposed,
    # occlusion, in-plane and out-of-plane turns) applied to this share of training faces, each a
    # random kind at a random severity, before the augmentation above. 0 = off.
    photo_aug: float = 0.0
    # Numerics. bf16 autocast helps only where the CPU has AVX-512 BF16/AMX; on AVX2 it is
    # ~20x slower, so "auto" picks it only when torch reports such a CPU. CUDA uses fp16 AMP.
    precision: str = "auto"  # "auto", "fp32" or "bf16"
    channels_last: bool = True  # ~2x faster convolutions on CPU (oneDNN)
    seed: int = 0
    eval_batch_size: int = 256
    # Mid-epoch checkpoints: at most this many minutes of training are lost when the process is
    # killed (a session ends). An epoch takes ~4-21 min on the CPUs seen; 0 = epoch ends only.
    checkpoint_minutes: float = 5.0
    # Also keep each epoch's model (the better of raw and EMA on the eval split) as
    # epochs/epoch_NNN.safetensors, to score on other sets (e.g. real photos) afterwards.
    keep_epochs: bool = False
    limit_train: int | None = None  # use only the first N (shuffled) training images: smoke tests
    limit_eval: int | None = None
    progress: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def changed_from_defaults(self) -> list[str]:
        """The names of the fields whose value is not this recipe's default, in field order. The
        trainer records them with the run, so a release's card (``fer_demo.model_card``, which
        cannot import this module) tells a setting that was given from one left at its default."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != f.default]


_HELP = {
    "data": "FER2013 folder root (train/, test/) or fer2013.csv",
    "out": "run directory (created); holds checkpoints and every output",
    "init": "scratch, imagenet, or a release .safetensors to fine-tune from (e.g. weights/fer_vgg19.safetensors)",
    "faces": "cropped (face crops, FER2013's way) or detect (photos: the app's detector and aligner, cached)",
    "ignore_classes": "skip class folders that are not one of the 7 expressions or an alias (e.g. contempt)",
    "ferplus": "FER+ votes to train on: fer2013new.csv for --data fer2013.csv, or the path-keyed votes.csv for a folder",
    "ferplus_labels": "with --ferplus: majority (one class per image), soft (the vote distribution) or mix (folder "
                      "layout: FER2013 label mixed with the votes)",
    "ferplus_mix": "with --ferplus-labels mix: the vote distribution's share of the target",
    "photo_aug": "share of training faces given a random photo-like corruption (train.corruptions)",
    "keep_epochs": "keep every epoch's model in epochs/ (to score each on other sets)",
    "batch_size": "the global batch: under torchrun each of N processes takes batch_size / N",
}


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field. Flags left out are absent from the parsed namespace
    (``argparse.SUPPRESS``), so ``config_from_args`` can tell them from flags given."""
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        help_text = _HELP.get(f.name, "") + (" " if f.name in _HELP else "") + f"(default: {default})"
        kw = dict(default=argparse.SUPPRESS, help=help_text)
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif f.name in ("limit_train", "limit_eval"):
            parser.add_argument(flag, type=int, **kw)
        elif default is None:  # optional paths (imagenet_weights, ferplus)
            parser.add_argument(flag, type=str, **kw)
        else:
            parser.add_argument(flag, type=type(default), **kw)


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (default: the release recipe) with the flags that were given on the command line."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    return dataclasses.replace(base or TrainConfig(), **given)


def config_from_dict(d: dict) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in d.items() if k in names})


__all__ = ["TrainConfig", "add_config_args", "config_from_args", "config_from_dict", "field"]
