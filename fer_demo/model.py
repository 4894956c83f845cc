"""The classifier: torchvision's VGG19-BN feature extractor for 48x48 grayscale faces.

Everything that describes the model lives here as named constants; they are written into
the model card next to the weights (see ``fer_demo.weights``) so a weights file describes
itself.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

# Canonical FER2013 class order (the integer labels of fer2013.csv).
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# FER2013 faces are 48x48 grayscale; aligned faces from photos are resampled to this size.
FACE_SIZE = 48
# The network sees a 40x40 crop of the 48x48 face: random crops while training, the
# centre crop at evaluation. 40 rather than 48 makes every step ~1.45x cheaper on a CPU.
INPUT_SIZE = 40
# Pixel normalisation of [0, 1] grayscale (mean and std of the FER2013 training split).
MEAN = 0.5136
STD = 0.3067
ARCHITECTURE = "vgg19_bn"
# CAM target: the ReLU of VGG block 4's third conv (5x5 maps for a 40x40 input). Block 5's
# maps are 2x2 here, too coarse to show where on a face the evidence is. Not block 4's last ReLU
# (features.38): it feeds a 2x2 max-pool of a 5x5 map, so its gradient reaches only the 4 pooled
# winners per channel and never the 5th row and column; on the 38-epoch release Grad-CAM there drew
# a flat map (no evidence anywhere) for 17% of PublicTest faces and for the astronaut example.
# features.35 feeds a 3x3 conv, whose gradient reaches every position: no flat maps on 200 faces.
CAM_TARGET_LAYER = "features.35"
DROPOUT = 0.5


class FERNet(nn.Module):
    """VGG19-BN features (1 input channel) + global average pool + a 512->7 linear head.

    Input: float tensor (N, 1, H, W), normalised with ``MEAN``/``STD``; any H, W >= 32.
    Output: logits (N, len(EMOTIONS)).
    """

    def __init__(self, num_classes: int = len(EMOTIONS), dropout: float = DROPOUT) -> None:
        super().__init__()
        # torchvision's VGG builder for configuration "E" (VGG19) with BatchNorm: the same
        # modules and parameter names as ``vgg19_bn().features`` without building (and
        # discarding) the 120M-parameter ImageNet head. Grayscale faces: one input channel.
        features = make_layers(cfgs["E"], batch_norm=True)
        features[0] = nn.Conv2d(1, 64, kernel_size=3, padding=1)
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        # The ImageNet head (4096-wide, 120M parameters) is meant for 7x7 maps; here the maps
        # are 1x1, so a single linear layer over 512 pooled channels is enough.
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(512, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


class ImageNetWeightsUnavailable(FileNotFoundError):
    """Raised when ``--init imagenet`` is asked for but the weights are not on this machine."""


IMAGENET_FILENAME = "vgg19_bn-c79401a0.pth"  # torchvision's VGG19_BN_Weights.IMAGENET1K_V1


def imagenet_weights_path(path: str | Path | None = None) -> Path:
    """Find torchvision's VGG19-BN ImageNet weights locally; never downloads.

    Looks at ``path`` if given, else in torch hub's checkpoint cache
    (``$TORCH_HOME/hub/checkpoints``). Raises ``ImageNetWeightsUnavailable`` saying how to get
    the file when it is not there.
    """
    if path is not None:
        candidate = Path(path).expanduser()
        if candidate.is_file():
            return candidate
        raise ImageNetWeightsUnavailable(f"ImageNet weights file not found: {candidate}")
    candidate = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILENAME
    if candidate.is_file():
        return candidate
    raise ImageNetWeightsUnavailable(
        f"ImageNet VGG19-BN weights are not on this machine (looked for {candidate}). "
        "On a machine with internet run: python -c \"from torchvision.models import vgg19_bn, "
        "VGG19_BN_Weights; vgg19_bn(weights=VGG19_BN_Weights.IMAGENET1K_V1)\" to fill the cache, "
        "or pass the downloaded file with --imagenet-weights PATH."
    )


def load_imagenet_features(model: FERNet, path: str | Path | None = None) -> FERNet:
    """Copy torchvision's ImageNet VGG19-BN convolution weights into ``model.features``.

    The RGB first convolution is summed over its input channels (a gray image is R=G=B), the
    ImageNet classifier is dropped. Loads with ``weights_only=True`` (no arbitrary pickle).
    """
    file = imagenet_weights_path(path)
    state = torch.load(file, map_location="cpu", weights_only=True)
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    if not features:
        raise ValueError(f"{file} holds no 'features.*' tensors: not a torchvision VGG state dict")
    first = features.get("0.weight")
    if first is None or first.ndim != 4 or first.shape[1] != 3:
        raise ValueError(f"{file}: expected features.0.weight of shape (64, 3, 3, 3)")
    features["0.weight"] = first.sum(dim=1, keepdim=True)
    model.features.load_state_dict(features, strict=True)
    return model


def build_model(init: str = "scratch", imagenet_weights: str | Path | None = None) -> FERNet:
    """Build the classifier. ``init`` is ``"scratch"`` (default) or ``"imagenet"``."""
    if init not in ("scratch", "imagenet"):
        raise ValueError(f"Invalid init {init!r}. Only 'scratch', 'imagenet' or a release .safetensors file "
                         "(train.fit.initial_model) are supported.")
    model = FERNet()
    if init == "imagenet":
        load_imagenet_features(model, imagenet_weights)
    return model
