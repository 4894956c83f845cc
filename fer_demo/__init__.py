"""fer-demo: facial-expression recognition with MTCNN, a VGG19 classifier and Grad-CAM."""

from __future__ import annotations

from fer_demo.model import EMOTIONS, INPUT_SIZE

__all__ = ["EMOTIONS", "INPUT_SIZE"]
__version__ = "0.1.0"
