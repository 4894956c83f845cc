"""deploy.py: what a Space deployment uploads, checked offline (nothing is sent anywhere)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

import deploy

ROOT = Path(__file__).resolve().parents[1]


def lfs_patterns() -> list[str]:
    lines = (ROOT / ".gitattributes").read_text().splitlines()
    return [line.split()[0] for line in lines if "filter=lfs" in line and not line.startswith("#")]


def test_the_real_tree_uploads_the_app_package_and_weights_and_nothing_else():
    files = deploy.files_to_upload(ROOT)
    for needed in ("app.py", "README.md", "requirements.txt", ".gitattributes", "fer_demo/pipeline.py",
                   "fer_demo/ui/cards.py", "weights/fer_vgg19.safetensors", "weights/fer_vgg19.json",
                   "weights/metrics.json", "weights/reference.csv.gz", "examples/astronaut.jpg"):
        assert needed in files, needed
    # Every module the app imports goes (a module left out would break the Space at start).
    assert {f"fer_demo/{p.relative_to(ROOT / 'fer_demo').as_posix()}" for p in (ROOT / "fer_demo").rglob("*.py")
            if "__pycache__" not in p.parts} <= set(files)
    banned = ("tests/", "benchmarks/", "train/", "runs/", ".venv/", ".ci/", "test-artifacts/", ".git/", ".pytest_cache/",
              ".gradio/")
    assert [f for f in files if f.startswith(banned) or "__pycache__" in f or f.endswith(".pyc")] == []


def test_large_files_go_to_lfs():
    """The Hub keeps files over 10 MB in LFS whatever .gitattributes says; .gitattributes sends the
    weights there by name too, so a small future weights file is no git blob either."""
    patterns = lfs_patterns()
    assert "*.safetensors" in patterns
    files = deploy.files_to_upload(ROOT)
    big = [f for f in files if (ROOT / f).stat().st_size > 10 * 1024 * 1024]
    assert big == ["weights/fer_vgg19.safetensors"]
    for f in big:
        assert any(fnmatch.fnmatch(Path(f).name, p) for p in patterns), f


def test_junk_in_allowed_folders_is_left_out(tmp_path):
    """A working copy full of what runs and tests leave: only the app's own files are selected."""
    for rel in ("app.py", "README.md", "requirements.txt", ".gitattributes", "fer_demo/__init__.py",
                "fer_demo/ui/cards.py", "weights/fer_vgg19.safetensors", "examples/a.jpg",
                # left out:
                "fer_demo/__pycache__/pipeline.cpython-311.pyc", "fer_demo/notes.txt", "weights/ckpt.pt",
                "tests/test_app.py", "runs/r1/last.pt", ".venv/bin/python", ".git/config", "test-artifacts/a.png",
                ".pytest_cache/v/x", "train/fit.py", "benchmarks/live.py", "requirements.lock", ".gradio/f.jpg",
                "weights/.cache/huggingface/x"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert deploy.files_to_upload(tmp_path) == sorted([
        ".gitattributes", "README.md", "app.py", "examples/a.jpg", "fer_demo/__init__.py", "fer_demo/ui/cards.py",
        "requirements.txt", "weights/fer_vgg19.safetensors"])


def test_list_uploads_nothing(capsys, monkeypatch):
    def refuse(*args, **kwargs):
        pytest.fail("--list must not upload")

    monkeypatch.setattr(deploy, "deploy", refuse)
    assert deploy.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "weights/fer_vgg19.safetensors" in out and "tests/" not in out
