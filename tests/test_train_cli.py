"""Command line (python -m train evaluate / export) on toy models whose answers are known."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from fer_demo.model import EMOTIONS, FERNet, build_model
from fer_demo.transforms import eval_transform
from fer_demo.weights import ModelCard, card_path, load_model, save_model
from train.__main__ import RELEASE_NAME, main
from train.metrics import classification_metrics, plot_history
from train_helpers import noise_face, write_csv, write_folder

ROOT = Path(__file__).resolve().parents[1]
SURPRISE = EMOTIONS.index("surprise")
PER_CLASS = 2


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    samples = [(c, noise_face(rng)) for _ in range(PER_CLASS) for c in range(len(EMOTIONS))]
    return write_folder(tmp_path_factory.mktemp("fer") / "fer2013", {"test": samples, "train": samples[:7]})


@pytest.fixture(scope="module")
def csv_data(tmp_path_factory) -> Path:
    rng = np.random.default_rng(8)
    rows = [(c, noise_face(rng), usage) for usage in ("Training", "PublicTest", "PrivateTest") for c in range(7)]
    return write_csv(tmp_path_factory.mktemp("csv") / "fer2013.csv", rows)


@pytest.fixture(scope="module")
def toy_weights(tmp_path_factory) -> Path:
    """A random model with a wide head (varied predictions), saved as the release format (fp16)."""
    torch.manual_seed(1)
    model = build_model()
    with torch.no_grad():
        model.classifier[-1].weight.normal_(0, 1.0)
    return save_model(model, tmp_path_factory.mktemp("toy") / "toy.safetensors", ModelCard.current(note="toy"))


def always(label: int) -> FERNet:
    """A model that predicts ``label`` for every image: zero head weights, a one-hot bias."""
    torch.manual_seed(2)
    model = build_model()
    with torch.no_grad():
        model.classifier[-1].weight.zero_()
        model.classifier[-1].bias.zero_()
        model.classifier[-1].bias[label] = 5.0
    return model.eval()


@pytest.fixture(scope="module")
def surprise_weights(tmp_path_factory) -> Path:
    return save_model(always(SURPRISE), tmp_path_factory.mktemp("known") / "surprise.safetensors", ModelCard.current())


def expected_confusion(weights: Path, split_dir: Path) -> np.ndarray:
    """Independent reference: our own file walk, PIL decode, eval_transform and argmax."""
    model, _ = load_model(weights)
    cm = np.zeros((7, 7), dtype=np.int64)
    for class_dir in split_dir.iterdir():
        true = EMOTIONS.index(class_dir.name)
        for f in class_dir.glob("*.png"):
            face = torch.from_numpy(np.array(Image.open(f).convert("L"))).unsqueeze(0)
            with torch.no_grad():
                pred = int(model(eval_transform(face)).argmax(1))
            cm[true, pred] += 1
    return cm


def run_main(capsys, *argv) -> dict:
    assert main(list(map(str, argv))) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_subprocess_prints_json_matching_independent_predictions(toy_weights, data_root):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "train", "evaluate", "--weights", str(toy_weights), "--data",
                           str(data_root)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    cm = expected_confusion(toy_weights, data_root / "test")
    assert metrics["confusion_matrix"] == cm.tolist()
    assert metrics["num_images"] == 7 * PER_CLASS and metrics["split"] == "test" and metrics["tta"] == "none"
    assert metrics["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert metrics["weights"] == str(toy_weights)
    assert metrics["classes"] == list(EMOTIONS)


def test_evaluate_known_model_puts_every_count_in_one_column(surprise_weights, data_root, capsys):
    expected = np.zeros((7, 7), dtype=np.int64)
    expected[:, SURPRISE] = PER_CLASS
    for tta in ([], ["--tta", "flip"], ["--tta"], ["--tta", "tencrop"]):
        m = run_main(capsys, "evaluate", "--weights", surprise_weights, "--data", data_root, *tta)
        assert m["confusion_matrix"] == expected.tolist(), tta
        assert m["accuracy"] == pytest.approx(1 / 7)
        assert m["per_class"]["surprise"]["recall"] == 1.0
        assert m["per_class"]["surprise"]["precision"] == pytest.approx(1 / 7)
        assert m["tta"] == {(): "none", ("--tta", "flip"): "flip", ("--tta",): "flip",
                            ("--tta", "tencrop"): "tencrop"}[tuple(tta)]


def test_evaluate_tta_flip_on_toy_model(toy_weights, data_root, capsys):
    m = run_main(capsys, "evaluate", "--weights", toy_weights, "--data", data_root, "--tta", "flip", "--batch-size", "5")
    assert m["tta"] == "flip" and m["num_images"] == 7 * PER_CLASS
    # Independent reference for flip TTA: mean of the two views' probabilities.
    model, _ = load_model(toy_weights)
    cm = np.zeros((7, 7), dtype=np.int64)
    for class_dir in (data_root / "test").iterdir():
        for f in class_dir.glob("*.png"):
            x = eval_transform(torch.from_numpy(np.array(Image.open(f))).unsqueeze(0))
            with torch.no_grad():
                p = model(x).softmax(1) + model(x.flip(-1)).softmax(1)
            cm[EMOTIONS.index(class_dir.name), int(p.argmax(1))] += 1
    assert m["confusion_matrix"] == cm.tolist()


def test_evaluate_csv_private_split(surprise_weights, csv_data, capsys):
    m = run_main(capsys, "evaluate", "--weights", surprise_weights, "--data", csv_data, "--split", "private")
    assert m["split"] == "private" and m["source"].endswith("PrivateTest") and m["num_images"] == 7
    assert [row[SURPRISE] for row in m["confusion_matrix"]] == [1] * 7


def make_run(run: Path, data_root: Path) -> tuple[FERNet, dict]:
    """A run directory like ``python -m train fit`` leaves, without training: best.safetensors (float32)
    with its card, history.csv and curves.png."""
    model = always(SURPRISE)
    metrics = classification_metrics([0, 1, 2, 3], [5, 5, 5, 5], split="test", source="toy")
    metrics.update(epoch=3, data=str(data_root), tta="none")
    save_model(model, run / "best.safetensors", ModelCard.current(training={"data": str(data_root), "epochs": 3},
                                                                  metrics=metrics), dtype=torch.float32)
    rows = [{"epoch": e, "train_loss": 2.0 - 0.1 * e, "train_acc": 0.2, "val_loss": 1.9, "val_acc": 0.25}
            for e in (1, 2, 3)]
    (run / "history.csv").write_text("epoch,train_loss\n1,2.0\n")
    plot_history(rows, run / "curves.png")
    return model, metrics


def test_export_no_eval_writes_release(tmp_path, data_root, capsys):
    run, dest_dir = tmp_path / "run", tmp_path / "weights"
    model, metrics = make_run(run, data_root)
    assert main(["export", "--run", str(run), "--to", str(dest_dir), "--no-eval"]) == 0
    assert "accuracy 0.0000" in capsys.readouterr().out
    dest = dest_dir / RELEASE_NAME
    for name in (RELEASE_NAME, "fer_vgg19.json", "metrics.json", "confusion.png", "history.csv", "curves.png"):
        assert (dest_dir / name).is_file(), name
    assert card_path(dest) == dest_dir / "fer_vgg19.json"
    with safe_open(str(dest), "pt") as f:
        assert f.get_tensor("features.0.weight").dtype == torch.float16
    assert json.loads((dest_dir / "metrics.json").read_text()) == metrics
    with Image.open(dest_dir / "confusion.png") as im:
        assert im.format == "PNG"
    shipped, card = load_model(dest)
    assert card.extra["metrics"] == metrics and card.extra["training"]["epochs"] == 3
    for k, v in model.state_dict().items():
        want = v.half().float() if v.is_floating_point() else v
        assert torch.equal(shipped.state_dict()[k], want), k


def test_export_rescores_the_fp16_weights(tmp_path, data_root, capsys):
    run, dest_dir = tmp_path / "run", tmp_path / "weights"
    make_run(run, data_root)
    assert main(["export", "--run", str(run), "--to", str(dest_dir)]) == 0
    capsys.readouterr()
    m = json.loads((dest_dir / "metrics.json").read_text())
    # Re-scored on the run's data (test split), not copied from the card.
    assert m["num_images"] == 7 * PER_CLASS and m["weights_dtype"] == "float16" and m["epoch"] == 3
    assert [row[SURPRISE] for row in m["confusion_matrix"]] == [PER_CLASS] * 7
    assert m["accuracy_tta_flip"] == pytest.approx(1 / 7) and m["accuracy_tta_tencrop"] == pytest.approx(1 / 7)
    _, card = load_model(dest_dir / RELEASE_NAME)
    assert card.extra["metrics"] == m
    # Calibrated as shipped: a temperature per TTA mode, before/after measures, the reliability diagram.
    cal = card.extra["calibration"]
    assert set(cal["temperature"]) == {"none", "flip", "tencrop"} and all(t > 0 for t in cal["temperature"].values())
    assert cal["modes"]["none"]["after"]["nll"] <= cal["modes"]["none"]["before"]["nll"] + 1e-9
    assert sum(b["count"] for b in cal["reliability"]["after"]) == 7 * PER_CLASS
    assert json.loads((dest_dir / "calibration.json").read_text()) == cal
    with Image.open(dest_dir / "reliability.png") as im:
        assert im.format == "PNG"
    assert m["calibration"]["temperature"] == cal["temperature"]["none"]


def test_recalibrating_drops_abstention_floors_chosen_at_another_temperature(tmp_path, data_root, capsys):
    run, dest_dir = tmp_path / "run", tmp_path / "weights"
    make_run(run, data_root)
    assert main(["export", "--run", str(run), "--to", str(dest_dir), "--faithfulness-faces", "0"]) == 0
    dest = dest_dir / RELEASE_NAME
    floors = {"thresholds": {"min_confidence": 0.1, "min_margin": 0.05}}

    def set_card(**changes) -> None:
        card = json.loads(card_path(dest).read_text())
        card.update(changes)
        card_path(dest).write_text(json.dumps(card))

    set_card(abstention=floors)  # the same data, the same temperature: the floors still hold
    assert main(["calibrate", "--weights", str(dest), "--data", str(data_root)]) == 0
    assert load_model(dest)[1].extra["abstention"] == floors
    card = json.loads(card_path(dest).read_text())
    set_card(calibration={**card["calibration"], "temperature": {**card["calibration"]["temperature"], "none": 9.9}})
    capsys.readouterr()
    assert main(["calibrate", "--weights", str(dest), "--data", str(data_root)]) == 0
    assert "abstention" not in load_model(dest)[1].extra and "floors were chosen at another temperature" in \
        capsys.readouterr().out


def test_export_of_a_run_trained_elsewhere_records_what_each_part_cost(tmp_path, data_root, capsys):
    """A run trained on another machine (its card names a data path that does not exist here):
    ``--data`` scores it on this machine's copy; the card gets the compute of the epochs up to
    the shipped one, by hardware, and MODEL_CARD.md shows it."""
    run, dest_dir = tmp_path / "run", tmp_path / "weights"
    make_run(run, data_root)
    _, card = load_model(run / "best.safetensors")
    card.extra["training"]["data"] = "/dev/shm/elsewhere/fer2013"  # where the GPU machine had it
    card.extra["metrics"]["epoch"] = 3
    save_model(load_model(run / "best.safetensors")[0], run / "best.safetensors", card, dtype=torch.float32)
    rows = ["epoch,epoch_seconds,eval_seconds,cpu_seconds,images_per_s,precision,hardware",
            "1,3600,360,7200,30,fp32,Some CPU", "2,3600,360,7200,34,fp32,Some CPU",
            "3,10,1,90,3400,fp16-amp,NVIDIA H200 (CUDA)", "4,10,1,90,3400,fp16-amp,NVIDIA H200 (CUDA)"]
    (run / "history.csv").write_text("\n".join(rows) + "\n")
    # Without --data: the recorded path is missing here, and the error names it.
    assert main(["export", "--run", str(run), "--to", str(tmp_path / "no"), "--faithfulness-faces", "0"]) == 2
    assert "/dev/shm/elsewhere/fer2013" in capsys.readouterr().err
    assert main(["export", "--run", str(run), "--to", str(dest_dir), "--data", str(data_root),
                 "--faithfulness-faces", "0"]) == 0
    m = json.loads((dest_dir / "metrics.json").read_text())
    assert m["num_images"] == 7 * PER_CLASS
    compute = load_model(dest_dir / RELEASE_NAME)[1].extra["training"]["compute"]
    assert compute["epochs"] == 3  # the shipped epoch's cost, not epoch 4's
    assert load_model(dest_dir / RELEASE_NAME)[1].extra["training"]["epochs_done"] == 4
    assert [(p["hardware"], p["first_epoch"], p["last_epoch"]) for p in compute["parts"]] == [
        ("Some CPU", 1, 2), ("NVIDIA H200 (CUDA)", 3, 3)]
    assert compute["hours"] == pytest.approx(2.2 + 11 / 3600, abs=1e-3)
    assert compute["cpu_hours"] == pytest.approx(4.025, abs=1e-3)
    card_md = (dest_dir / "MODEL_CARD.md").read_text()
    assert "| 1-2 | Some CPU | fp32 | 2.20 | 4.00 |" in card_md
    assert "| 3-3 | NVIDIA H200 (CUDA) | fp16-amp | 0.00 | 0.03 |" in card_md
    assert "/dev/shm" not in card_md


def test_card_redraws_plots_and_model_card_from_the_release(tmp_path, data_root, capsys):
    run, dest_dir = tmp_path / "run", tmp_path / "weights"
    make_run(run, data_root)
    assert main(["export", "--run", str(run), "--to", str(dest_dir), "--faithfulness-faces", "0"]) == 0
    card_md = (dest_dir / "MODEL_CARD.md").read_text()
    assert "## Calibration" in card_md and "Not measured for these weights" in card_md  # no faithfulness run
    assert not (dest_dir / "faithfulness.json").exists()
    for name in ("MODEL_CARD.md", "confusion.png", "reliability.png"):
        (dest_dir / name).unlink()
    assert main(["card", "--weights", str(dest_dir / RELEASE_NAME)]) == 0
    for name in ("MODEL_CARD.md", "confusion.png", "reliability.png"):
        assert (dest_dir / name).is_file(), name
    assert (dest_dir / "MODEL_CARD.md").read_text() == card_md
    capsys.readouterr()
    assert main(["card", "--weights", str(tmp_path / "missing.safetensors")]) == 2
    assert "not found" in capsys.readouterr().err


def test_export_a_chosen_epoch_of_a_run_that_kept_them(tmp_path, data_root, capsys):
    """``--epoch N`` ships epochs/epoch_NNN.safetensors (a model chosen on other data than PublicTest)."""
    run, dest_dir = tmp_path / "run", tmp_path / "weights"
    make_run(run, data_root)
    other = build_model().eval()
    with torch.no_grad():
        for p in other.parameters():
            p.fill_(0.01)
    (run / "epochs").mkdir()
    _, best_card = load_model(run / "best.safetensors")
    save_model(other, run / "epochs" / "epoch_002.safetensors",
               ModelCard.current(**{**best_card.extra, "metrics": {**best_card.extra["metrics"], "epoch": 2}}))
    assert main(["export", "--run", str(run), "--to", str(dest_dir), "--no-eval", "--epoch", "2"]) == 0
    shipped, card = load_model(dest_dir / RELEASE_NAME)
    assert card.extra["metrics"]["epoch"] == 2
    assert torch.equal(shipped.state_dict()["classifier.2.weight"], other.state_dict()["classifier.2.weight"].half().float())
    assert main(["export", "--run", str(run), "--to", str(dest_dir), "--no-eval", "--epoch", "7"]) == 2
    err = capsys.readouterr().err
    assert "epoch_007.safetensors: no such epoch file; this run kept ['epoch_002.safetensors']" in err


@pytest.mark.integration
def test_export_with_votes_and_photos_measures_robustness_and_a_later_export_drops_it(tmp_path, data_root, capsys):
    """``--votes``/``--photos`` write robustness.json (and its card section) for the shipped weights;
    exporting again without them deletes it: a previous model's robustness must not describe this one."""
    import shutil

    run, dest_dir = tmp_path / "run", tmp_path / "weights"
    make_run(run, data_root)
    votes = tmp_path / "votes.csv"
    files = sorted((data_root / "test").glob("*/*.png"))
    votes.write_text("path,fer2013_label,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
                     + "".join(f"{f.relative_to(data_root).as_posix()},x,0,0,9,0,0,0,0,0,0,1\n" for f in files[:4]))
    photos = tmp_path / "photos"
    (photos / "happy").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "astronaut.jpg", photos / "happy" / "astronaut.jpg")
    assert main(["export", "--run", str(run), "--to", str(dest_dir), "--faithfulness-faces", "0",
                 "--votes", str(votes), "--photos", str(photos)]) == 0
    r = json.loads((dest_dir / "robustness.json").read_text())
    # The toy model answers "surprise" for every face: 1/7 on FER2013's labels, all 4 FER+ "surprise" faces right.
    assert r["publictest"]["clean"]["fer2013_labels"] == {"accuracy": pytest.approx(1 / 7), "faces": 7 * PER_CLASS}
    assert r["publictest"]["clean"]["ferplus_majority"] == {"accuracy": 1.0, "faces": 4}
    assert r["photos"]["photos"] == 1 and r["photos"]["score"]["most_predicted"] == "surprise"
    assert r["corruptions"]["mean_corruption_accuracy"] == pytest.approx(1 / 7)
    assert "## Real photos and robustness" in (dest_dir / "MODEL_CARD.md").read_text()
    capsys.readouterr()
    assert main(["export", "--run", str(run), "--to", str(dest_dir), "--no-eval"]) == 0
    assert not (dest_dir / "robustness.json").exists()
    assert "## Real photos and robustness" not in (dest_dir / "MODEL_CARD.md").read_text()
