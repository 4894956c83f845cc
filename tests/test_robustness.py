"""train.robustness and ``python -m train robustness``: the release's robustness report, numbers only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from robustness_helpers import band_faces
from train_helpers import write_folder

from train.__main__ import main
from train.corruptions import CORRUPTIONS
from train.robustness import ROBUSTNESS_NAME, data_name, measure, read_robustness, summary_lines, write_robustness

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
VOTES_HEADER = "path,fer2013_label,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"


@pytest.fixture(scope="module")
def fer_root(tmp_path_factory) -> Path:
    faces, labels = band_faces(14, seed=1)
    root = write_folder(tmp_path_factory.mktemp("fer") / "fer2013", {"test": list(zip(labels.tolist(), faces))})
    # Five faces with a FER+ majority (happy) and one tie: 5 faces scored against FER+.
    files = [f.relative_to(root).as_posix() for f in sorted((root / "test").glob("*/*.png"))]
    rows = [f"{f},x,0,7,0,0,0,0,0,0,0,0\n" for f in files[:5]] + [f"{files[5]},x,5,5,0,0,0,0,0,0,0,0\n"]
    (root / "votes.csv").write_text(VOTES_HEADER + "".join(rows))
    return root


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos") / "sfew-dev"
    for cls, name in (("happy", "astronaut.jpg"), ("neutral", "grace_hopper.jpg"), ("neutral", "no_face_cat.jpg")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / name, root / cls / name)
    return root


@pytest.fixture
def weights(tmp_path, release_weights) -> Path:
    dest = tmp_path / "release" / release_weights.name
    dest.parent.mkdir()
    shutil.copy(release_weights, dest)
    shutil.copy(release_weights.with_suffix(".json"), dest.with_suffix(".json"))
    return dest


def test_data_name_keeps_only_the_last_two_parts(tmp_path):
    assert data_name(tmp_path / "shared" / "data" / "sfew-dev") == "data/sfew-dev"


def test_nothing_to_measure_or_votes_without_data_is_refused(tmp_path):
    with pytest.raises(ValueError, match="nothing to measure"):
        measure(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="needs the FER2013 folder"):
        measure(tmp_path / "w.safetensors", votes=tmp_path / "v.csv", photos=tmp_path)
    assert main(["robustness", "--weights", str(tmp_path / "w.safetensors")]) == 2


@pytest.mark.integration
def test_publictest_part_alone_with_the_release(weights, fer_root):
    r = measure(weights, data=fer_root, corruption_faces=0, progress=False, command="test")
    assert r.photos is None and r.corruptions is None and set(r.seconds) == {"publictest"}
    p = r.publictest
    assert p["faces"] == 14 and p["votes"] is None and "ferplus_majority" not in p["clean"]
    assert p["selective"]["faces"] == 14 and 0 <= p["selective"]["chosen"]["coverage"] <= 1
    # Without photos, abstention is measured at the release's own floors (its card's).
    from dataclasses import asdict

    from fer_demo.quality import card_thresholds

    own = asdict(card_thresholds(json.loads(weights.with_suffix(".json").read_text())))
    assert r.command == "test" and r.hardware["cores"] >= 1 and r.thresholds == own
    out = write_robustness(weights, r)
    assert out == weights.parent / ROBUSTNESS_NAME and read_robustness(weights) == json.loads(json.dumps(r.to_dict()))
    assert any(line.startswith("PublicTest (14 faces)") for line in summary_lines(r))


@pytest.mark.integration
def test_the_command_writes_every_part_numbers_only_and_the_card_section(weights, fer_root, photo_root, capsys):
    assert main(["robustness", "--weights", str(weights), "--data", str(fer_root), "--votes",
                 str(fer_root / "votes.csv"), "--photos", str(photo_root), "--corruption-faces", "7",
                 "--bootstrap", "50"]) == 0
    assert "wrote" in capsys.readouterr().out
    text = (weights.parent / ROBUSTNESS_NAME).read_text()
    r = json.loads(text)
    s = r["photos"]["score"]
    assert r["photos"]["data"].endswith("/sfew-dev") and r["photos"]["data"].count("/") == 1
    assert r["photos"]["photos"] == 3 and r["photos"]["photos_with_a_face"] == 2 and s["no_face"] == 1
    assert s["num_photos"] == 3 and r["photos"]["selective"]["over_all_photos"]["photos"] == 3
    assert r["publictest"]["clean"]["ferplus_majority"]["faces"] == 5
    assert r["publictest"]["clean"]["fer2013_labels"]["faces"] == 14
    k = r["corruptions"]
    assert k["faces"] == 7 and list(k["corruptions"]) == list(CORRUPTIONS) and 0 <= k["clean_accuracy"] <= 1
    assert set(r["seconds"]) == {"photos", "publictest", "corruptions"}
    assert "robustness" in r["command"] and r["date"].startswith("20")
    # Numbers only: no photo's file name and no full path of this machine.
    for secret in ("astronaut", "grace_hopper", "no_face_cat", str(fer_root), str(photo_root)):
        assert secret not in text.replace(r["command"], ""), secret
    card = (weights.parent / "MODEL_CARD.md").read_text()
    assert "## Real photos and robustness" in card and "astronaut" not in card
    assert f"{100 * s['accuracy']:.1f}%" in card and "development set" in card
    # The abstention floors chosen on the photos are the release's own now: in its card, used by the app.
    choice = r["photos"]["selective"]["choice"]
    section = json.loads(weights.with_suffix(".json").read_text())["abstention"]
    assert section["thresholds"] == choice["thresholds"] == {k: r["thresholds"][k] for k in section["thresholds"]}
    assert section["chosen_on"] == r["photos"]["data"] and section["faces"] == 2
    assert section["cross_validated"]["groups"] == 2 and section["cross_validated"]["folds"] == 2
    from fer_demo.pipeline import Predictor

    t = Predictor(weights).quality_thresholds
    assert {k: getattr(t, k) for k in section["thresholds"]} == section["thresholds"]


def test_read_robustness_absent_or_broken(tmp_path):
    w = tmp_path / "w.safetensors"
    assert read_robustness(w) is None
    (tmp_path / ROBUSTNESS_NAME).write_text("[1, 2]")
    with pytest.raises(ValueError, match="not hold a JSON object"):
        read_robustness(w)
    (tmp_path / ROBUSTNESS_NAME).write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_robustness(w)


def test_summary_lines_of_a_report_dict():
    from robustness_helpers import fake_robustness

    r = fake_robustness()
    lines = summary_lines(r)
    assert lines[0].startswith("data/sfew-dev: 28 photos") and "FER+ majority" in lines[1]
    assert lines[2].startswith(f"corruptions (35 faces, clean {r['corruptions']['clean_accuracy']:.3f})")
    assert np.isclose(float(lines[2].rsplit(" ", 1)[1]), r["corruptions"]["mean_corruption_accuracy"], atol=5e-4)
