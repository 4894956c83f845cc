"""Deploy the app to a Hugging Face Space: one command, and the one list of what goes there.

    python deploy.py --list                    # what would be uploaded (offline; uploads nothing)
    python deploy.py --repo USER/fer-demo      # upload it (after `hf auth login`, or with HF_TOKEN set)

The upload is ``huggingface_hub``'s ``HfApi.upload_folder`` on this folder with ``ALLOW`` and
``IGNORE`` (the same filter ``files_to_upload`` applies, ``huggingface_hub.utils.filter_repo_objects``):
the app, ``fer_demo``, the weights and their release files, the examples, ``requirements.txt``, the
README (its front matter configures the Space) and ``.gitattributes``. Never tests, benchmarks, the
trainer, runs, virtual environments or caches. The Hub stores files matched by ``.gitattributes``
(``*.safetensors``, ...) and every file over 10 MB in its large-file storage (LFS), so a new release
does not add 40 MB to the Space's git history. Files on the Space that are no longer in the list are
deleted in the same commit. The same with the ``hf`` CLI::

    hf upload USER/fer-demo . . --repo-type space --delete "*" \\
        --include "app.py" "README.md" ... (``ALLOW``) --exclude "**/__pycache__/**" ... (``IGNORE``)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# What the Space serves: the app and its package, the shipped release (weights, card, the Model page's
# metrics and plots, the monitoring reference), the example photos, what Spaces installs and reads.
ALLOW = [
    "app.py",
    "README.md",
    "requirements.txt",
    ".gitattributes",
    "fer_demo/**.py",
    "weights/*",
    "examples/*",
    "docs/screenshot.png",  # the README's picture
]
# Never, even inside an allowed folder: caches and anything a run or a test leaves behind.
IGNORE = [
    "**/__pycache__/**",
    "*.pyc",
    "**/.ipynb_checkpoints/**",
    "**/*.tmp",
    "weights/*.pt",  # trainer checkpoints, if one was copied there
    "weights/*.partial",
]


def files_to_upload(folder: str | Path = ROOT) -> list[str]:
    """The files (relative POSIX paths, sorted) that ``deploy`` uploads from ``folder``: exactly what
    ``upload_folder`` selects with ``ALLOW`` and ``IGNORE`` (and the Hub client's own ignores: .git)."""
    from huggingface_hub.hf_api import DEFAULT_IGNORE_PATTERNS
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    paths = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(filter_repo_objects(paths, allow_patterns=ALLOW, ignore_patterns=[*IGNORE, *DEFAULT_IGNORE_PATTERNS]))


def deploy(repo_id: str, folder: str | Path = ROOT, token: str | None = None) -> str:
    """Create the Space if needed (Gradio SDK) and upload ``files_to_upload(folder)`` in one commit;
    returns the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, repo_type="space", folder_path=str(folder), allow_patterns=ALLOW,
                             ignore_patterns=IGNORE, delete_patterns=["*"],
                             commit_message="Deploy fer-demo (deploy.py)")
    return str(info)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--list", action="store_true", help="print what would be uploaded, with sizes; upload nothing")
    group.add_argument("--repo", help="the Space to upload to, USER/NAME")
    args = parser.parse_args(argv)
    if args.list:
        files = files_to_upload()
        for f in files:
            print(f"{(ROOT / f).stat().st_size / 1e6:9.2f} MB  {f}")
        print(f"{len(files)} files, {sum((ROOT / f).stat().st_size for f in files) / 1e6:.1f} MB")
        return 0
    print(deploy(args.repo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
