"""Class activation maps: where on the face the evidence for a class is.

Wraps pytorch-grad-cam 1.5.7. Each call builds the CAM object inside a ``with`` block, so
its forward hooks on the target layer are removed when the call ends (also on errors);
nothing accumulates on the shared model across requests.

The network sees the centre 40x40 of each 48x48 face (``fer_demo.transforms``). The CAM
covers those 40x40 pixels; it is placed back at the centre of the 48x48 face frame and the
4 px border it never saw is 0 ("no evidence"), rather than invented by edge extension.

Speed: a CAM needs the gradient of the class score with respect to the target layer's
output only. While a CAM is computed, the weights do not require gradients and a forward
hook hands the layers after the target a detached copy of its output that does, so the
backward pass stops at the target layer instead of running through all of VGG19 (about half
the time of a full forward + backward on a 40x40 face; the maps are identical).

Faster still with the classifier's ``FastNet`` (``Explainer(..., fast=classifier.fast)``): its
head (input -> target layer) runs without autograd, in bf16 where the CPU has it, and
pytorch-grad-cam hooks a small model, ``FastNet.tail`` (target layer -> logits), fed the head's
activations; only that tail runs forward and backward with autograd. The maps are pytorch-grad-cam's
own, scaled to the 40x40 input as on the full model (``tests/test_fastnet.py`` compares them).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator

import numpy as np
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from fer_demo.classify import check_faces
from fer_demo.fastnet import FastNet
from fer_demo.model import CAM_TARGET_LAYER, FACE_SIZE, INPUT_SIZE
from fer_demo.transforms import eval_transform

# Name -> pytorch-grad-cam class. "eigencam" is gradient-free: it shows the first principal
# component of the layer's activations and ignores the target class.
CAM_METHODS = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
}
# The method that measured most faithful on the shipped weights (weights/faithfulness.json, written by
# benchmarks/cam_faithfulness.py and the export; a test keeps the two in step): the one default of
# every caller (``Explainer``, ``Predictor.analyze``/``predict``, the app, the CLI, the live overlay
# and the video tab).
DEFAULT_CAM = "hirescam"


@functools.lru_cache(maxsize=None)
def tail_cam(cam_cls: type) -> type:
    """``cam_cls`` run on ``FastNet.tail``: its input is the target layer's 5x5 activations, the maps
    are scaled to the 40x40 network input as pytorch-grad-cam scales them on the whole model."""

    def get_target_width_height(self, input_tensor: torch.Tensor) -> tuple[int, int]:
        return INPUT_SIZE, INPUT_SIZE

    return type(f"Tail{cam_cls.__name__}", (cam_cls,), {"get_target_width_height": get_target_width_height})



class Explainer:
    """Computes CAMs for a classifier's target layer.

    Args:
        model: the classifier (``FERNet``), e.g. ``EmotionClassifier.model``; kept in eval mode.
        target_layer_name: a name from ``model.named_modules()``, e.g. the card's
            ``cam_target_layer`` ("features.35").
        lock: held while the model carries the CAM's hooks. Pass the lock of anything else that
            runs the same model (``EmotionClassifier.lock``) so no forward pass of theirs runs
            through the hooks; default: a lock of its own.
        fast: the classifier's ``FastNet`` (``EmotionClassifier.fast``), split at the same target
            layer: CAMs are then computed on it (faster, see the module docstring); None (default)
            or a ``FastNet`` split elsewhere: on ``model``.

    ``explain`` is thread-safe: one CAM at a time hooks the shared model.
    """

    def __init__(self, model: torch.nn.Module, target_layer_name: str = CAM_TARGET_LAYER,
                 lock: threading.Lock | None = None, fast: FastNet | None = None) -> None:
        modules = dict(model.named_modules())
        if target_layer_name not in modules:
            convs = [n for n, m in modules.items() if isinstance(m, (torch.nn.Conv2d, torch.nn.ReLU))]
            raise ValueError(f"target layer {target_layer_name!r} is not in the model; "
                             f"conv/ReLU layers are: {', '.join(convs[-6:])}, ...")
        self.model = model
        self.target_layer_name = target_layer_name
        self.target_layer = modules[target_layer_name]
        self.device = next(model.parameters()).device
        self.lock = lock if lock is not None else threading.Lock()
        self.fast = fast if fast is not None and fast.split_layer == target_layer_name else None
        # Found once: walking the model's modules on every call cost ~0.4 ms of a ~14 ms face.
        linear = [m for m in modules.values() if isinstance(m, torch.nn.Linear)]
        self.num_classes = linear[-1].out_features if linear else 7

    def explain(self, faces: np.ndarray, targets: list[int], method: str = DEFAULT_CAM) -> np.ndarray:
        """One CAM per face, for one target class per face, in a single batch.

        Args:
            faces: uint8 (N, 48, 48) aligned grayscale faces.
            targets: N class indices (into the model's classes), one per face.
            method: a key of ``CAM_METHODS``; default ``DEFAULT_CAM``.

        Returns:
            float32 (N, 48, 48) in [0, 1], aligned with ``faces``: pytorch-grad-cam scales each
            map to min 0 / max 1 over the 40x40 crop (all zeros where no pixel supports the
            class); the 4 px border outside the network's crop is 0. (0, 48, 48) for N=0.

        Works whatever the caller's grad mode (inside ``torch.no_grad()`` or
        ``torch.inference_mode()`` too): gradients are enabled locally.

        Raises:
            TypeError / ValueError: bad faces (dtype / shape), method, or targets (count or index).
        """
        if targets is None:
            raise ValueError("explain needs one target class index per face; use "
                             "explain_with_probabilities(faces, None) for the predicted classes")
        return self.explain_with_probabilities(faces, targets, method)[0]

    def explain_with_probabilities(
        self, faces: np.ndarray, targets: list[int] | None, method: str = DEFAULT_CAM, temperature: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """CAMs and the class probabilities of the same forward pass.

        Like ``explain``, but ``targets`` may be ``None`` (each face's predicted class), and the
        softmax of the CAM's own forward pass (logits divided by ``temperature``) is returned too:
        with ``temperature=classifier.temperature("none")`` it equals
        ``EmotionClassifier.predict(faces, tta="none")`` (same preprocessing, same eval-mode
        network), so a caller without test-time augmentation needs one forward, not two.

        Returns:
            (cams float32 (N, 48, 48) in [0, 1], probabilities float32 (N, C), rows sum to 1).
        """
        faces = check_faces(faces)
        if method not in CAM_METHODS:
            raise ValueError(f"Invalid CAM method {method!r}. Only {', '.join(map(repr, CAM_METHODS))} are supported.")
        n = faces.shape[0]
        num_classes = self.num_classes
        if targets is not None:
            targets = [int(t) for t in targets]
            if len(targets) != n:
                raise ValueError(f"need one target per face: got {len(targets)} targets for {n} faces")
            bad = [t for t in targets if not 0 <= t < num_classes]
            if bad:
                raise ValueError(f"target class indices {bad} out of range; valid are 0..{num_classes - 1}")
        out = np.zeros((n, FACE_SIZE, FACE_SIZE), dtype=np.float32)
        if n == 0:
            return out, np.zeros((0, num_classes), dtype=np.float32)
        grayscale = logits = None
        cam_targets = None if targets is None else [ClassifierOutputTarget(t) for t in targets]
        # Note: BaseCAM.__exit__ swallows IndexError (it prints it); targets are checked
        # above, and a missing result is caught below.
        if self.fast is not None:
            with self.lock, self.fast.threads_scope(), torch.inference_mode(False), torch.enable_grad():
                x = eval_transform(torch.from_numpy(faces)).to(self.device)
                activations = self.fast.head(x).requires_grad_(True)
                with tail_cam(CAM_METHODS[method])(model=self.fast.tail, target_layers=[self.fast.tail.cam]) as cam:
                    grayscale = cam(input_tensor=activations, targets=cam_targets)
                    logits = cam.outputs.detach()
        else:
            with self.lock, torch.inference_mode(False), torch.enable_grad(), self._gradients_stop_at_target():
                x = eval_transform(torch.from_numpy(faces)).to(self.device)
                with CAM_METHODS[method](model=self.model, target_layers=[self.target_layer]) as cam:
                    grayscale = cam(input_tensor=x, targets=cam_targets)
                    logits = cam.outputs.detach()
        if grayscale is None or logits is None:
            raise RuntimeError(f"{method} produced no CAM (pytorch-grad-cam suppressed an IndexError)")
        cams = np.nan_to_num(np.asarray(grayscale, dtype=np.float32), nan=0.0)
        if cams.shape != (n, INPUT_SIZE, INPUT_SIZE):
            raise RuntimeError(f"{method} returned CAMs of shape {cams.shape}, expected {(n, INPUT_SIZE, INPUT_SIZE)}")
        off = (FACE_SIZE - INPUT_SIZE) // 2  # the same centre crop as eval_transform
        out[:, off : off + INPUT_SIZE, off : off + INPUT_SIZE] = np.clip(cams, 0.0, 1.0)
        probs = torch.softmax(logits.float() / temperature, dim=1).cpu().numpy().astype(np.float32)
        return out, probs / probs.sum(axis=1, keepdims=True)

    @contextlib.contextmanager
    def _gradients_stop_at_target(self) -> Iterator[None]:
        """Freeze the weights and cut the graph at the target layer for the duration."""
        params = list(self.model.parameters())
        flags = [p.requires_grad for p in params]

        def cut(module: torch.nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
            return output.detach().requires_grad_(True)

        # prepend: runs before pytorch-grad-cam's hooks, which then see (and hook) the copy.
        handle = self.target_layer.register_forward_hook(cut, prepend=True)
        try:
            for p in params:
                p.requires_grad_(False)
            yield
        finally:
            handle.remove()
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)
            self.model.zero_grad(set_to_none=True)
