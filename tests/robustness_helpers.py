"""A made-up ``robustness.json`` built by the real measuring code (``train.real_photos``,
``train.selective``, ``train.publictest``) from tiny generated data: no photo, no weights."""

from __future__ import annotations

import numpy as np

from fer_demo.model import EMOTIONS


def quality(confidence: float, face_px: float = 120.0, brightness: float = 110.0, yaw: float | None = 5.0,
            margin: float | None = None) -> dict:
    """A ``FaceQuality.to_dict()``-shaped record (the verdict fields are not read by ``train.selective``);
    ``margin`` defaults to ``confidence / 2`` (the runner-up at half the top probability)."""
    return {"readable": True, "reasons": [], "face_px": face_px, "sharpness": 0.5, "brightness": brightness,
            "detection_score": 0.99, "roll": 0.0, "yaw": yaw, "confidence": confidence,
            "margin": confidence / 2 if margin is None else margin}


def photo_records(n: int = 28) -> list[dict]:
    """``run_photos``-shaped records over 4 films of 5, 5, 5 and the rest photos: every 7th photo has no face, every 3rd is wrong,
    every 4th answered face has low confidence (0.15) and the rest 0.8."""
    records = []
    for i in range(n):
        true = EMOTIONS[i % len(EMOTIONS)]
        film = f"Film{min(i // 5, 3)}"
        rec = {"file": f"{true}/{film}_{i:06d}_00000001.jpg", "film": film, "true": true,
               "faces_found": 1, "image_size": [720, 576]}
        if i % 7 == 3:
            rec.update(pred=None, faces_found=0)
        else:
            guess = true if i % 3 else EMOTIONS[(i + 1) % len(EMOTIONS)]
            rec.update(pred=guess, guess=guess, label=guess, quality=quality(0.15 if i % 4 == 0 else 0.8))
        records.append(rec)
    return records


class BrightnessClassifier:
    """Stands in for ``EmotionClassifier``: the class is the face's mean grey level in 7 bands of 30 from 25."""

    classes = tuple(EMOTIONS)

    def predict(self, faces: np.ndarray) -> np.ndarray:
        k = np.clip((np.asarray(faces, dtype=float).mean(axis=(1, 2)) - 25) // 30, 0, 6).astype(int)
        out = np.full((len(faces), 7), 0.05, np.float32)
        out[np.arange(len(faces)), k] = 0.7
        return out


def band_faces(n: int = 35, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 48, 48) faces with mean grey level 40 + 30 * label: in their label's band (labels 0..6 cycling)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 7
    faces = np.clip(rng.normal(labels[:, None, None] * 30 + 40, 6, size=(n, 48, 48)), 0, 255).astype(np.uint8)
    return faces, labels


def fake_robustness() -> dict:
    """A whole ``robustness.json`` (``RobustnessReport.to_dict()``) from the made-up parts."""
    from dataclasses import asdict

    from fer_demo.quality import DEFAULT_THRESHOLDS
    from train.publictest import clean_scores, corruption_table, predict_probs
    from train.real_photos import summarise
    from train.robustness import RobustnessReport
    from train.selective import photo_choice, photo_selective, publictest_selective

    records = photo_records()
    faces, labels = band_faces()
    clf = BrightnessClassifier()
    probs = predict_probs(clf, faces)
    ferplus = np.where(np.arange(len(labels)) % 5 == 0, -1, labels)
    table = corruption_table(clf, faces, labels, progress=False)
    table.update(clean_accuracy=float((probs.argmax(1) == labels).mean()), subset="all")
    return RobustnessReport(
        weights="fer_vgg19.safetensors", command="python -m train robustness --data D --photos P",
        date="2026-12-02T01:00:00+00:00", hardware={"name": "Test CPU", "cores": 2},
        thresholds=asdict(DEFAULT_THRESHOLDS), seconds={"photos": 1.0, "publictest": 2.0, "corruptions": 3.0},
        photos={"data": "data/sfew-dev", "photos": len(records), "photos_with_a_face": 24, "settings": {},
                "score": summarise(records, n_boot=50),
                "selective": {**photo_selective(records, DEFAULT_THRESHOLDS),
                              "choice": photo_choice(records, DEFAULT_THRESHOLDS)[1]}},
        publictest={"data": "fer2013/test", "faces": len(labels), "tta": "none", "votes": "ferplus/votes.csv",
                    "clean": clean_scores(probs.argmax(1), labels, ferplus),
                    "selective": publictest_selective(faces, labels, probs, DEFAULT_THRESHOLDS)},
        corruptions=table).to_dict()
