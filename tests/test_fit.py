"""Training loop (train.fit): a tiny real fit, exact resume after a crash, resume refusals, class weights.

The model is the real VGG19-BN (~20M parameters, ~10 images/s on a busy 2-core CPU), so the
datasets are tiny: 3 visually separable classes x 16 training images, batch 16, 2 epochs.
"""

from __future__ import annotations

import csv
import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import train.fit as train_fit
from fer_demo.weights import load_model
from train.config import TrainConfig
from train.fit import CHECKPOINT, ResumeError, class_weights, fit
from train_helpers import fail_during_epoch, learnable_dataset

pytestmark = pytest.mark.slow

CLASSES = (0, 3, 6)  # angry, happy, neutral
OUTPUTS = ["config.json", "checkpoint.pt", "best.safetensors", "best.json", "history.csv", "curves.png",
           "metrics.json", "confusion.png"]


class SimulatedCrash(Exception):
    pass


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return learnable_dataset(tmp_path_factory.mktemp("fer") / "fer2013", CLASSES, n_train_per_class=16,
                             n_test_per_class=3, seed=0)


def tiny_config(data_root, out, **kw) -> TrainConfig:
    # The release recipe (optimizer, LR schedule, clipping, augmentation) on a tiny run.
    base = dict(data=str(data_root), out=str(out), epochs=2, batch_size=16, limit_eval=6,
                eval_batch_size=64, precision="fp32", channels_last=True, seed=0, progress=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def run_a(data_root, tmp_path_factory):
    """An uninterrupted 2-epoch run (shared; tests below only read it)."""
    out = tmp_path_factory.mktemp("run") / "a"
    cfg = tiny_config(data_root, out)
    metrics = fit(cfg, device="cpu")
    return cfg, out, metrics


def read_history(out):
    with open(out / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def load_ckpt(out):
    return torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)


def test_tiny_fit_writes_every_output_and_learns(run_a):
    cfg, out, metrics = run_a
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert not list(out.glob("*.tmp"))
    for png in ("curves.png", "confusion.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG"

    hist = read_history(out)
    assert [int(r["epoch"]) for r in hist] == [1, 2]
    losses = [float(r["train_loss"]) for r in hist]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses  # it learns: the last epoch's loss is below the first's

    info = json.loads((out / "config.json").read_text())
    assert info["epochs"] == 2 and info["resolved_precision"] == "fp32" and info["device"] == "cpu"
    assert info["train_size"] == 48 and info["eval_size"] == 6
    assert info["class_counts"] == [16, 0, 0, 16, 0, 0, 16]
    assert set(info["fingerprints"]) == {"train", "test"}
    # which settings were given, for the card's reproduce command (fer_demo.model_card reads it)
    assert info["changed_from_defaults"] == ["data", "out", "epochs", "batch_size", "precision", "eval_batch_size",
                                             "limit_eval", "progress"]

    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == metrics
    assert metrics["num_images"] == 6 and metrics["split"] == "test" and metrics["epoch"] in (1, 2)
    assert metrics["accuracy"] == pytest.approx(max(float(r["val_acc"]) for r in hist), abs=1e-5)
    assert sum(map(sum, metrics["confusion_matrix"])) == 6

    ckpt = load_ckpt(out)
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2 and ckpt["config"] == cfg.to_dict()

    # best.safetensors is a loadable float32 model file whose card carries the run.
    model, card = load_model(out / "best.safetensors")
    assert card.extra["metrics"]["accuracy"] == metrics["accuracy"]
    assert card.extra["training"]["fingerprints"] == info["fingerprints"]
    assert card.extra["training"]["changed_from_defaults"] == info["changed_from_defaults"]
    if metrics["epoch"] == 2:  # the best epoch is the last: the file holds the checkpoint's weights
        for k, v in ckpt["model"].items():
            assert torch.equal(model.state_dict()[k], v), k


def test_resume_after_crash_is_bitwise_identical(run_a, data_root, tmp_path, monkeypatch):
    cfg_a, out_a, metrics_a = run_a
    out_b = tmp_path / "b"
    cfg_b = tiny_config(data_root, out_b)

    # Crash at the 2nd batch of epoch 2 (the in-memory state has moved on past epoch 1's checkpoint).
    real = train_fit.train_one_epoch

    def crash() -> None:
        raise SimulatedCrash("killed during epoch 2")

    crashing, calls = fail_during_epoch(real, crash)
    monkeypatch.setattr(train_fit, "train_one_epoch", crashing)
    with pytest.raises(SimulatedCrash):
        fit(cfg_b, device="cpu")
    assert calls == {"epochs": 2, "batches": 2}
    after_crash = load_ckpt(out_b)
    assert after_crash["epoch"] == 1 and len(read_history(out_b)) == 1
    monkeypatch.setattr(train_fit, "train_one_epoch", real)

    fit(cfg_b, resume=True, device="cpu")

    assert_same_run(out_a, out_b)  # weights, best model and metrics
    a, b = load_ckpt(out_a), load_ckpt(out_b)
    assert a["epoch"] == b["epoch"] == 2
    assert set(a["model"]) == set(b["model"])
    # The optimiser's state (moments, step counts) and the schedule continue exactly as well.
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for i, sa in a["optimizer"]["state"].items():
        sb = b["optimizer"]["state"][i]
        assert sa.keys() == sb.keys() and sa
        for name in sa:
            assert torch.equal(torch.as_tensor(sa[name]), torch.as_tensor(sb[name])), (i, name)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    same_history(out_a, out_b)
    assert json.loads((out_b / "metrics.json").read_text()) == metrics_a

    # Resuming a finished run trains nothing and changes nothing.
    before = (out_b / CHECKPOINT).read_bytes()
    assert fit(cfg_b, resume=True, device="cpu") == metrics_a
    assert (out_b / CHECKPOINT).read_bytes() == before
    assert len(read_history(out_b)) == 2


def test_resume_without_checkpoint(data_root, tmp_path):
    with pytest.raises(ResumeError, match="no checkpoint.pt"):
        fit(tiny_config(data_root, tmp_path / "fresh"), resume=True, device="cpu")
    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize("change", [{"lr": 0.01}, {"epochs": 3}, {"seed": 1}, {"limit_eval": None}, {"erase_p": 0.0},
                                    {"optimizer": "sgd"}])
def test_resume_with_a_different_config(run_a, data_root, change):
    _, out, _ = run_a
    before = (out / CHECKPOINT).read_bytes()
    with pytest.raises(ResumeError, match=r"config differs.*" + next(iter(change))):
        fit(tiny_config(data_root, out, **change), resume=True, device="cpu")
    assert (out / CHECKPOINT).read_bytes() == before


def test_resume_with_changed_data(run_a, data_root, tmp_path):
    _, out, _ = run_a
    changed = tmp_path / "fer2013"
    shutil.copytree(data_root, changed)
    victim = sorted((changed / "train" / "happy").iterdir())[0]
    arr = np.asarray(Image.open(victim)).copy()
    arr[0, 0] ^= 0xFF
    Image.fromarray(arr).save(victim)
    before = (out / CHECKPOINT).read_bytes()
    # Only the data path changes, which resume allows; the content check must catch it.
    with pytest.raises(ResumeError, match="dataset at .* changed since the checkpoint"):
        fit(tiny_config(changed, out), resume=True, device="cpu")
    assert (out / CHECKPOINT).read_bytes() == before


def test_resume_refuses_a_pickle_checkpoint(data_root, tmp_path):
    """checkpoint.pt is read with weights_only=True: a planted pickle with code is not run."""
    out = tmp_path / "run"
    out.mkdir()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.mkdir, (str(marker),))

    (out / CHECKPOINT).write_bytes(pickle.dumps({"model": Evil()}, protocol=2))
    with pytest.raises(ResumeError, match="not a readable checkpoint"):
        fit(tiny_config(data_root, out), resume=True, device="cpu")
    assert not marker.exists()


def test_fine_tuning_starts_from_a_release_file(run_a, data_root, tmp_path, monkeypatch):
    """``--init weights/....safetensors``: the run's first step starts from that file's weights."""
    _, out_a, _ = run_a
    release = out_a / "best.safetensors"
    seen = {}
    real = train_fit.train_one_epoch

    def spy(model, *args, **kwargs):
        seen.setdefault("start", {k: v.clone() for k, v in model.state_dict().items()})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(train_fit, "train_one_epoch", spy)
    fit(tiny_config(data_root, tmp_path / "ft", init=str(release), epochs=1, lr=1e-4), device="cpu")
    start, _ = load_model(release)
    for k, v in start.state_dict().items():
        assert torch.equal(seen["start"][k].to(v.dtype), v), k
    from fer_demo.weights import ModelFileError

    with pytest.raises(ModelFileError, match="not found"):
        fit(tiny_config(data_root, tmp_path / "ft2", init=str(tmp_path / "missing.safetensors")), device="cpu")


def test_batch_larger_than_training_set(data_root, tmp_path):
    with pytest.raises(ValueError, match="batch_size 64 is larger than the training set"):
        fit(tiny_config(data_root, tmp_path / "r", batch_size=64), device="cpu")


def test_invalid_optimizer(data_root, tmp_path):
    with pytest.raises(ValueError, match="Invalid optimizer 'lamb'"):
        fit(tiny_config(data_root, tmp_path / "r", optimizer="lamb"), device="cpu")


def test_class_weights():
    counts = [400, 40, 200, 4000, 1000, 300, 0]
    w = class_weights(counts, 0.5)
    assert w.dtype == torch.float32 and w.shape == (7,) and torch.isfinite(w).all()
    # Monotone in rarity: fewer images -> larger weight (the empty class counts as 1 image).
    order = np.argsort(counts, kind="stable")
    assert all(w[order[i]] > w[order[i + 1]] for i in range(6))
    # Normalised so the sample-weighted mean weight is 1 (the loss scale is unchanged).
    c = torch.tensor(counts, dtype=torch.float64).clamp(min=1)
    assert float((w.double() * c).sum() / c.sum()) == pytest.approx(1.0, rel=1e-6)
    # Ratios follow (n_max / n_c) ** power.
    assert float(w[1] / w[3]) == pytest.approx((4000 / 40) ** 0.5, rel=1e-5)
    # A stronger power spreads them further; power 0 is plain cross-entropy.
    assert float(class_weights(counts, 1.0)[1] / class_weights(counts, 1.0)[3]) > float(w[1] / w[3])
    assert torch.equal(class_weights(counts, 0.0), torch.ones(7))
    assert torch.allclose(class_weights([5] * 7, 0.7), torch.ones(7))


# ------------------------------------------------------------------------------------------
# Faults: a real SIGKILL (in a child process), a full disk, an unwritable or corrupt run


KILL_DRIVER = """
import io, json, os, signal, sys
sys.path[:0] = [{root!r}, {tests!r}]
import torch
import train.fit as F
from train.config import config_from_dict
from train_helpers import fail_during_epoch

cfg, mode = config_from_dict(json.loads(sys.argv[1])), sys.argv[2]
if mode == "mid-epoch":  # SIGKILL at the 2nd batch of epoch 2 (after epoch 1's checkpoint)
    F.train_one_epoch, _ = fail_during_epoch(F.train_one_epoch, lambda: os.kill(os.getpid(), signal.SIGKILL))
elif mode == "mid-write":  # SIGKILL with half of epoch 2's checkpoint on disk
    real_save, calls = torch.save, {{"n": 0}}

    def save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            buf = io.BytesIO()
            real_save(obj, buf)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *a, **k)

    torch.save = save
F.fit(cfg, device="cpu")
"""


def assert_same_run(out_a, out_b) -> None:
    """Two run folders hold the same final checkpoint weights, best model and metrics, bit for bit."""
    a, b = load_ckpt(out_a), load_ckpt(out_b)
    assert a["epoch"] == b["epoch"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    best_a, _ = load_model(out_a / "best.safetensors")
    best_b, _ = load_model(out_b / "best.safetensors")
    for k, v in best_a.state_dict().items():
        assert torch.equal(best_b.state_dict()[k], v), k
    assert json.loads((out_b / "metrics.json").read_text()) == json.loads((out_a / "metrics.json").read_text())


@pytest.mark.parametrize("when", ["mid-epoch", "mid-write"])
def test_sigkill_then_resume_gives_the_uninterrupted_weights(run_a, data_root, tmp_path, when):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    cfg_a, out_a, _ = run_a
    out_b = tmp_path / "b"
    cfg_b = tiny_config(data_root, out_b)
    root = str(Path(__file__).resolve().parents[1])
    driver = tmp_path / "driver.py"
    driver.write_text(KILL_DRIVER.format(root=root, tests=str(Path(__file__).resolve().parent)))
    run = subprocess.run([sys.executable, str(driver), json.dumps(cfg_b.to_dict()), when], cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert load_ckpt(out_b)["epoch"] == 1  # the last complete checkpoint survived
    if when == "mid-write":
        partial = out_b / (CHECKPOINT + ".tmp")
        assert partial.is_file() and 0 < partial.stat().st_size < (out_b / CHECKPOINT).stat().st_size * 0.75
    fit(cfg_b, resume=True, device="cpu")
    assert_same_run(out_a, out_b)
    assert not (out_b / (CHECKPOINT + ".tmp")).exists()


def test_disk_full_keeps_the_last_checkpoint_and_says_so(data_root, tmp_path, monkeypatch):
    import errno

    out = tmp_path / "run"
    real_save, calls = torch.save, {"n": 0}

    def save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(train_fit.CheckpointWriteError, match="cannot write .*checkpoint.pt .No space left on device"):
        fit(tiny_config(data_root, out), device="cpu")
    assert load_ckpt(out)["epoch"] == 1 and not (out / (CHECKPOINT + ".tmp")).exists()


def test_cli_reports_an_unwritable_run_directory(data_root, tmp_path, capsys):
    from train.__main__ import main

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    rc = main(["fit", "--data", str(data_root), "--out", str(blocker / "run"), "--epochs", "1",
               "--batch-size", "16", "--precision", "fp32", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: cannot write") and "Traceback" not in err
    assert str(blocker) in err


@pytest.mark.parametrize("content", [b"", b"garbage, not a checkpoint", b"PK\x03\x04 truncated zip"])
def test_corrupt_checkpoint_is_a_clear_error(data_root, tmp_path, capsys, content):
    from train.__main__ import main

    out = tmp_path / "run"
    out.mkdir()
    (out / CHECKPOINT).write_bytes(content)
    with pytest.raises(ResumeError, match="not a readable checkpoint"):
        fit(tiny_config(data_root, out), resume=True, device="cpu")
    rc = main(["fit", "--data", str(data_root), "--out", str(out), "--resume", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "not a readable checkpoint" in err and "delete it to start over" in err


def test_a_foreign_checkpoint_is_refused(data_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"model": {"w": torch.zeros(1)}}, out / CHECKPOINT)
    with pytest.raises(ResumeError, match="not a checkpoint of this trainer"):
        fit(tiny_config(data_root, out), resume=True, device="cpu")


# ------------------------------------------------------------------------------------------
# A campaign across sessions: mid-epoch checkpoints, the wsd schedule, EMA, status


TIMING = ("images_per_s", "epoch_seconds", "eval_seconds", "cpu_seconds")


def same_history(out_a, out_b) -> None:
    ha = [{k: v for k, v in r.items() if k not in TIMING} for r in read_history(out_a)]
    hb = [{k: v for k, v in r.items() if k not in TIMING} for r in read_history(out_b)]
    assert ha == hb


def crash() -> None:
    raise SimulatedCrash("killed during epoch 2")


def test_mid_epoch_checkpoint_then_cli_resume_is_bitwise_identical(run_a, data_root, tmp_path, monkeypatch, capsys):
    """Saving after every step (checkpoint_minutes ~0), a crash inside epoch 2 keeps that epoch's
    first step; ``python -m train fit --out DIR --resume`` (no other flag: the run's own config)
    then ends exactly as the uninterrupted run, which saved only at epoch ends."""
    from train.__main__ import main

    _, out_a, metrics_a = run_a
    out_b = tmp_path / "b"
    crashing, calls = fail_during_epoch(train_fit.train_one_epoch, crash)
    monkeypatch.setattr(train_fit, "train_one_epoch", crashing)
    with pytest.raises(SimulatedCrash):
        fit(tiny_config(data_root, out_b, checkpoint_minutes=1e-9), device="cpu")
    monkeypatch.undo()
    ckpt = load_ckpt(out_b)
    assert (ckpt["epoch"], ckpt["step"], ckpt["steps_per_epoch"]) == (1, 1, 3)  # 48 images / batch 16
    assert ckpt["epoch_state"]["step"] == 1 and ckpt["epoch_state"]["seen"] == 16
    progress = json.loads((out_b / "progress.json").read_text())
    assert (progress["epoch"], progress["step"], progress["finished"]) == (1, 1, False)

    assert main(["fit", "--out", str(out_b), "--resume", "--device", "cpu"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert_same_run(out_a, out_b)
    same_history(out_a, out_b)
    assert json.loads((out_b / "metrics.json").read_text()) == metrics_a
    segments = load_ckpt(out_b)["segments"]
    assert [(s["epoch"], s["step"]) for s in segments] == [(0, 0), (1, 1)]
    assert all(s["precision"] == "fp32" and s["hardware"]["label"] for s in segments)


@pytest.fixture(scope="module")
def run_ema(data_root, tmp_path_factory):
    """An uninterrupted wsd run with EMA weights (tiny decay so they differ from the raw ones)."""
    out = tmp_path_factory.mktemp("run") / "ema"
    cfg = tiny_config(data_root, out, schedule="wsd", ema_decay=0.5)
    return cfg, out, fit(cfg, device="cpu")


def test_ema_and_wsd_resume_mid_epoch_exactly(run_ema, data_root, tmp_path, monkeypatch):
    cfg_a, out_a, metrics_a = run_ema
    out_b = tmp_path / "b"
    cfg_b = tiny_config(data_root, out_b, schedule="wsd", ema_decay=0.5, checkpoint_minutes=1e-9)
    monkeypatch.setattr(train_fit, "train_one_epoch", fail_during_epoch(train_fit.train_one_epoch, crash)[0])
    with pytest.raises(SimulatedCrash):
        fit(cfg_b, device="cpu")
    monkeypatch.undo()
    fit(cfg_b, resume=True, device="cpu")
    assert_same_run(out_a, out_b)
    same_history(out_a, out_b)
    a, b = load_ckpt(out_a), load_ckpt(out_b)
    assert a["ema"] and set(a["ema"]) == set(b["ema"])
    for k, v in a["ema"].items():
        assert torch.equal(v, b["ema"][k]), k
    # The EMA weights are real averages: not the raw weights, and scored every epoch.
    assert any(not torch.equal(a["ema"]["module." + k], v) for k, v in a["model"].items() if v.is_floating_point())
    hist = read_history(out_a)
    assert all(r["val_acc_ema"] != "" for r in hist)
    assert metrics_a["weights"] in ("raw", "ema")
    best = max(max(float(r["val_acc"]), float(r["val_acc_ema"])) for r in hist)
    assert metrics_a["accuracy"] == pytest.approx(best, abs=1e-5)


def test_wsd_schedule_shape():
    cfg = TrainConfig(schedule="wsd", warmup_frac=0.1, decay_frac=0.2, epochs=10)
    total = 1000
    f = [train_fit.wsd_factor(s, total, cfg) for s in range(total + 1)]
    assert f[0] == pytest.approx(1 / 25)
    assert all(a < b for a, b in zip(f[:100], f[1:101]))  # linear warmup over 10% of the steps
    assert set(f[100:800]) == {1.0}  # constant until the last 20%
    assert all(a > b for a, b in zip(f[800:1000], f[801:1001]))  # then a linear decay
    assert f[1000] == pytest.approx(1e-3)


@pytest.mark.parametrize("done, new_epochs, ok", [
    (300, 20, True),  # constant phase under both lengths: the campaign can grow ...
    (300, 6, True),  # ... or shrink
    (850, 20, False),  # already decaying under the old length
    (450, 5, False),  # would be decaying under the new length
    (50, 20, False),  # still warming up under the new length (warmup 200 steps)
])
def test_wsd_epochs_may_change_on_resume_only_in_the_constant_phase(done, new_epochs, ok):
    saved = TrainConfig(schedule="wsd", warmup_frac=0.1, decay_frac=0.2, epochs=10)
    cfg = TrainConfig(schedule="wsd", warmup_frac=0.1, decay_frac=0.2, epochs=new_epochs)
    if ok:
        train_fit.check_resumable(saved, cfg, done, steps_per_epoch=100)
    else:
        with pytest.raises(ResumeError, match="constant-LR phase"):
            train_fit.check_resumable(saved, cfg, done, steps_per_epoch=100)
    onecycle = TrainConfig(epochs=10)
    with pytest.raises(ResumeError, match="config differs.*epochs"):
        train_fit.check_resumable(onecycle, TrainConfig(epochs=new_epochs), done, steps_per_epoch=100)


def test_a_finished_wsd_run_cannot_be_lengthened(run_ema, data_root):
    cfg, out, _ = run_ema
    with pytest.raises(ResumeError, match="constant-LR phase"):
        fit(tiny_config(data_root, out, schedule="wsd", ema_decay=0.5, epochs=4), resume=True, device="cpu")


def test_status_of_an_interrupted_run(data_root, tmp_path, monkeypatch, capsys):
    from train.__main__ import main
    from train.hardware import describe
    from train.status import run_status

    out = tmp_path / "run"
    monkeypatch.setattr(train_fit, "train_one_epoch", fail_during_epoch(train_fit.train_one_epoch, crash)[0])
    with pytest.raises(SimulatedCrash):
        fit(tiny_config(data_root, out, checkpoint_minutes=1e-9), device="cpu")
    st = run_status(out)
    assert (st.epochs, st.epochs_done, st.step, st.steps_per_epoch, st.finished) == (2, 1, 1, 3, False)
    hist = read_history(out)
    assert st.best_acc == pytest.approx(float(hist[0]["val_acc"]), abs=1e-5) and st.best_epoch == 1
    here = describe("cpu").label
    assert st.this_machine == here
    assert [(p.hardware, p.precision, p.first_epoch, p.last_epoch) for p in st.parts] == [(here, "fp32", 1, 1)]
    assert st.parts[0].cpu_hours > 0 and st.parts[0].images_per_s > 0
    # ETA: 2 steps of 16 images left at the rate measured on this hardware, plus one evaluation.
    assert st.images_per_s == pytest.approx(float(hist[0]["images_per_s"]))
    assert st.eta_seconds == pytest.approx(32 / st.images_per_s + float(hist[0]["eval_seconds"]), rel=1e-6)
    assert len(st.segments) == 1 and st.segments[0]["hardware"]["label"] == here

    assert main(["status", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1/2 epochs + 1/3 steps" in text and here in text and "ETA" in text
    assert main(["status", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs_done"] == 1


def test_status_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    from train.__main__ import main

    assert main(["status", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no progress.json" in err and "Traceback" not in err


def test_status_sees_a_live_training_process(tmp_path):
    import socket
    import subprocess
    import sys

    from train.status import pid_alive

    # The child says when it runs: right after fork, /proc/PID/cmdline is still the parent's.
    ready = "import time; print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", ready, "-m", "train", "fit"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert pid_alive(proc.pid, socket.gethostname())
        assert not pid_alive(proc.pid, "another-host")
    finally:
        proc.kill()
        proc.wait()
    assert not pid_alive(proc.pid, socket.gethostname())
    other = subprocess.Popen([sys.executable, "-c", ready], stdout=subprocess.PIPE, text=True)  # not a trainer
    try:
        assert other.stdout.readline().strip() == "ready"
        assert not pid_alive(other.pid, socket.gethostname())
    finally:
        other.kill()
        other.wait()


def test_auto_precision_measures_only_where_bf16_is_native(monkeypatch):
    import train.engine as E
    import train.hardware as H

    cpu = torch.device("cpu")
    asked = []
    monkeypatch.setattr(H, "bf16_native", lambda: False)
    assert E.resolve_precision("auto", cpu, lambda: asked.append(1) or "bf16") == "fp32" and not asked
    monkeypatch.setattr(H, "bf16_native", lambda: True)
    assert E.resolve_precision("auto", cpu, lambda: "fp32") == "fp32"  # measured slower: fp32
    assert E.resolve_precision("auto", cpu, lambda: "bf16") == "bf16"
    assert E.resolve_precision("bf16", cpu, lambda: "fp32") == "bf16"  # explicit wins
    assert E.resolve_precision("auto", torch.device("cuda"), lambda: "fp32") == "fp16-amp"


def test_ema_is_scored_with_recomputed_batchnorm_statistics():
    """The EMA's averaged running statistics are replaced by ones measured for its weights, on a
    copy: the EMA itself and torch's random stream are untouched (training stays bitwise)."""
    from fer_demo.model import build_model
    from train.data import FaceDataset

    torch.manual_seed(0)
    model = build_model()
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9),
                                              use_buffers=True)
    faces = torch.randint(0, 256, (40, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    data = FaceDataset(faces, torch.zeros(40, dtype=torch.int64), "toy", "train")
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    rng = torch.get_rng_state()
    scored = train_fit.ema_for_eval(ema, data, TrainConfig(eval_batch_size=20, channels_last=False), torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, ema.state_dict()[k]) for k, v in before.items())
    assert not scored.training and scored is not ema.module
    # Its first BatchNorm holds the mean of its own first convolution on those faces (two equal batches).
    from fer_demo.transforms import eval_transform

    with torch.no_grad():
        conv = scored.features[0](eval_transform(faces))
    assert torch.allclose(scored.features[1].running_mean, conv.mean(dim=(0, 2, 3)), atol=1e-4)
    assert not torch.allclose(ema.module.features[1].running_mean, conv.mean(dim=(0, 2, 3)), atol=1e-4)


def test_reading_statistics_every_few_steps_trains_the_same_and_sums_the_same():
    """On a GPU the loop reads loss/accuracy back every ``SYNC_EVERY`` steps instead of every step
    (each read waits for the device); the weights, the epoch's sums and the checkpoint hook's
    step counts must be what reading every step gives (run on the CPU with ``sync_every``)."""
    from fer_demo.transforms import TrainAugment
    from train.data import FaceDataset
    from train.engine import train_one_epoch

    gen = torch.Generator().manual_seed(0)
    data = FaceDataset(torch.randint(0, 256, (23 * 4, 48, 48), dtype=torch.uint8, generator=gen),
                       torch.randint(0, 7, (23 * 4,), generator=gen), source="random", split="train")

    def run(sync_every):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                                    torch.nn.Flatten(), torch.nn.Linear(16, 7))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        seen_steps = []
        stats = train_one_epoch(model, data, opt, sched, torch.nn.CrossEntropyLoss(), TrainAugment(),
                                torch.Generator().manual_seed(1), 4, torch.device("cpu"), "fp32", False,
                                progress=False, on_step=lambda p: seen_steps.append((p.step, p.seen)),
                                sync_every=sync_every)
        return model.state_dict(), stats, seen_steps

    w1, s1, steps1 = run(1)
    w5, s5, steps5 = run(5)
    assert all(torch.equal(w1[k], w5[k]) for k in w1)
    assert s5.loss == pytest.approx(s1.loss, rel=1e-12) and s5.accuracy == s1.accuracy
    assert steps1 == [(k, 4 * k) for k in range(1, 24)]
    assert steps5 == [(5, 20), (10, 40), (15, 60), (20, 80), (23, 92)]



@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_photo_corruption_runs_on_the_host_before_the_copy_to_the_device(device):
    """--photo-aug's corruptions (OpenCV) run on each batch while it is still on the CPU; the device
    gets the corrupted batch and only TrainAugment runs there. On a CPU, training is what the former
    single augmentation (corrupt, then TrainAugment, one generator) gave, bit for bit."""
    from fer_demo.transforms import TrainAugment
    from train.corruptions import PhotoCorrupt
    from train.data import FaceDataset
    from train.engine import train_one_epoch

    gen = torch.Generator().manual_seed(0)
    data = FaceDataset(torch.randint(0, 256, (8 * 4, 48, 48), dtype=torch.uint8, generator=gen),
                       torch.randint(0, 7, (8 * 4,), generator=gen), source="random", split="train")
    base, photo = TrainAugment(), PhotoCorrupt(0.5)
    dev = torch.device(device)

    def run(augment, corrupt=None):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                                    torch.nn.Flatten(), torch.nn.Linear(16, 7)).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        train_one_epoch(model, data, opt, sched, torch.nn.CrossEntropyLoss(), augment,
                        torch.Generator().manual_seed(1), 8, dev, "fp32", False, progress=False, corrupt=corrupt)
        return {k: v.cpu() for k, v in model.state_dict().items()}

    seen = []

    def corrupt_spy(faces, generator):
        out = photo(faces, generator)
        seen.append(("corrupt", faces.device.type, out.clone()))
        return out

    def augment_spy(faces, generator):
        seen.append(("augment", faces.device.type, faces.cpu().clone()))
        return base(faces, generator)

    split = run(augment_spy, corrupt=corrupt_spy)
    assert [(what, where) for what, where, _ in seen] == [("corrupt", "cpu"), ("augment", device)] * 4
    for (_, _, corrupted), (_, _, augmented) in zip(seen[::2], seen[1::2]):
        assert torch.equal(corrupted, augmented)  # the device gets exactly the host's corrupted batch
    if device == "cpu":
        together = run(lambda faces, g: base(photo(faces, g), g))
        assert all(torch.equal(split[k], together[k]) for k in split)
        assert not all(torch.equal(split[k], v) for k, v in run(base).items())  # the corruption does change training

def test_photo_like_fine_tune_with_mixed_votes_keeps_every_epoch(run_a, data_root, tmp_path, monkeypatch):
    """The real-photo recipe's switches together: FER+ votes mixed into the targets (folder layout),
    photo-like corruptions, and every epoch's model kept for scoring elsewhere."""
    import argparse

    from train.config import add_config_args, config_from_args

    _, out_a, _ = run_a
    votes = tmp_path / "votes.csv"
    rows = ["path,fer2013_label,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"]
    for p in sorted((data_root / "train").rglob("*.png"))[::2]:
        rows.append(f"{p.relative_to(data_root).as_posix()},x,2,0,0,0,0,0,0,0,0,0")
    votes.write_text("\n".join(rows) + "\n")
    parser = argparse.ArgumentParser()
    add_config_args(parser)
    args = parser.parse_args(["--ferplus", str(votes), "--ferplus-labels", "mix", "--ferplus-mix", "0.3",
                              "--photo-aug", "0.5", "--keep-epochs"])
    cfg = config_from_args(args, tiny_config(data_root, tmp_path / "ft", init=str(out_a / "best.safetensors"),
                                             lr=1e-4))
    assert (cfg.ferplus, cfg.ferplus_mix, cfg.photo_aug, cfg.keep_epochs) == (str(votes), 0.3, 0.5, True)
    seen = {}
    real = train_fit.train_one_epoch

    def spy(model, data, optimizer, scheduler, criterion, augment, *a, **kw):
        seen["augment"], seen["corrupt"], seen["soft"] = augment, kw.get("corrupt"), data.soft
        return real(model, data, optimizer, scheduler, criterion, augment, *a, **kw)

    monkeypatch.setattr(train_fit, "train_one_epoch", spy)
    fit(cfg, device="cpu")
    assert type(seen["augment"]).__name__ == "TrainAugment"  # on the device
    assert type(seen["corrupt"]).__name__ == "PhotoCorrupt" and seen["corrupt"].p == 0.5  # on the host, before it
    # half the images carry votes (all "neutral"): their target moved 0.3 of the way to neutral
    soft = seen["soft"]
    voted = soft.max(1).values < 1
    assert 0 < voted.sum() < len(soft)
    assert torch.allclose(soft[voted, 6], torch.full_like(soft[voted, 6], 0.3))
    kept = sorted(p.name for p in (tmp_path / "ft" / "epochs").iterdir())
    assert kept == ["epoch_001.json", "epoch_001.safetensors", "epoch_002.json", "epoch_002.safetensors"]
    model, card = load_model(tmp_path / "ft" / "epochs" / "epoch_002.safetensors")
    assert card.extra["metrics"]["epoch"] == 2
    cfg_json = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert cfg_json["photo_aug"] == 0.5 and cfg_json["ferplus_labels"] == "mix"
