"""Load test: many gradio_client users at once against the real app, Grad-CAM on.

    python benchmarks/load.py                           # starts app.py, 8 clients x 50 requests
    python benchmarks/load.py --clients 4 --requests 10 --json load.json
    python benchmarks/load.py --url http://localhost:7860/ --pid 1234   # an app already running

Each client sends the example photos in turn (mixed: one face, three faces, no face, EXIF
rotated) to ``/predict``. Prints a markdown table: requests, errors, p50/p95 latency as a client
sees it (upload + queue + analysis + reply), throughput, the server's resident memory before and
after (VmRSS of the app process, after a warm-up pass), and the files left in Gradio's cache (the
app deletes uploads once read, so the count must not grow). With ``--url`` and no ``--pid`` the
memory and cache columns are left out. Exit status 1 if any request failed.

Run it on an otherwise idle machine; the app runs with its own settings (``app.QUEUE``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ["astronaut.jpg", "group_three_faces.jpg", "no_face_cat.jpg", "grace_hopper_exif_rotated.jpg",
          "grace_hopper.jpg"]


@dataclass
class LoadResult:
    clients: int
    requests: int
    errors: int
    error_examples: list[str]
    p50_ms: float
    p95_ms: float
    max_ms: float
    throughput_rps: float
    wall_s: float
    rss_before_mb: float | None
    rss_after_mb: float | None
    cache_files_before: int | None
    cache_files_after: int | None

    @property
    def rss_growth_mb(self) -> float | None:
        if self.rss_before_mb is None or self.rss_after_mb is None:
            return None
        return self.rss_after_mb - self.rss_before_mb

    def table(self) -> str:
        def opt(v, fmt):
            return "n/a" if v is None else format(v, fmt)

        rows = [("clients x requests", f"{self.clients} x {self.requests // max(self.clients, 1)}"),
                ("errors", f"{self.errors} of {self.requests}"),
                ("latency p50 / p95 / max", f"{self.p50_ms:.0f} / {self.p95_ms:.0f} / {self.max_ms:.0f} ms"),
                ("throughput", f"{self.throughput_rps:.2f} requests/s ({self.wall_s:.0f} s in all)"),
                ("server memory (RSS) before -> after",
                 f"{opt(self.rss_before_mb, '.0f')} -> {opt(self.rss_after_mb, '.0f')} MB "
                 f"({opt(self.rss_growth_mb, '+.0f')} MB)"),
                ("files in Gradio's cache before -> after",
                 f"{opt(self.cache_files_before, 'd')} -> {opt(self.cache_files_after, 'd')}")]
        lines = ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
        return "\n".join(lines)


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def launch_app(timeout_s: float = 300) -> Iterator[tuple[str, int, Path]]:
    """``python app.py`` on a free port with a private Gradio cache; yields (url, pid, cache folder)."""
    port = free_port()
    cache = Path(tempfile.mkdtemp(prefix="fer-load-cache-"))
    env = {**os.environ, "PORT": str(port), "GRADIO_TEMP_DIR": str(cache), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log.read().decode()[-3000:]}")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not answer at {url} within {timeout_s:.0f} s")
            time.sleep(0.5)
        yield url, proc.pid, cache
    finally:
        proc.terminate()  # SIGTERM: the app deletes its cache on the way out
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def run_load(url: str, clients: int, requests: int, photos: list[Path], cam: str = "gradcam",
             pid: int | None = None, cache: Path | None = None, progress: bool = True) -> LoadResult:
    """``clients`` threads, each with its own gradio_client, send ``requests`` photos each."""
    def warm_up() -> None:
        client = Client(url, verbose=False)
        for photo in photos:
            client.predict(handle_file(str(photo)), cam, "predicted", "none", api_name="/predict")

    # Warm-up: every photo once from each of ``clients`` concurrent clients, as the load itself
    # runs: first-use allocations (the server's worker threads, their malloc arenas, connections)
    # are not leaks. One sequential client left ~40 MB of them inside the measured window.
    warmers = [threading.Thread(target=warm_up) for _ in range(clients)]
    for t in warmers:
        t.start()
    for t in warmers:
        t.join()
    time.sleep(1)
    rss_before = rss_mb(pid) if pid else None
    files_before = count_files(cache) if cache else None

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    done = [0]
    total = clients * requests

    def client_loop(index: int) -> None:
        client = Client(url, verbose=False)
        for i in range(requests):
            photo = photos[(index + i) % len(photos)]
            start = time.perf_counter()
            try:
                result = client.predict(handle_file(str(photo)), cam, "predicted", "none", api_name="/predict")
                if not isinstance(result, dict) or "faces" not in result:
                    raise RuntimeError(f"unexpected reply {str(result)[:100]}")
                error = None
            except Exception as e:  # noqa: BLE001 - count every failure, keep loading
                error = f"{photo.name}: {type(e).__name__}: {e}"
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if error:
                    errors.append(error)
                done[0] += 1
                if progress:
                    print(f"\r{done[0]}/{total} requests, {len(errors)} errors", end="", file=sys.stderr, flush=True)

    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if progress:
        print(file=sys.stderr)
    time.sleep(1)
    ms = sorted(v * 1000 for v in latencies)
    return LoadResult(
        clients=clients, requests=total, errors=len(errors), error_examples=errors[:5],
        p50_ms=statistics.median(ms), p95_ms=ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))], max_ms=ms[-1],
        throughput_rps=total / wall, wall_s=wall,
        rss_before_mb=rss_before, rss_after_mb=rss_mb(pid) if pid else None,
        cache_files_before=files_before, cache_files_after=count_files(cache) if cache else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients [8]")
    parser.add_argument("--requests", type=int, default=50, help="requests per client [50]")
    parser.add_argument("--cam", default="gradcam", help="explanation method sent with each request [gradcam]")
    parser.add_argument("--url", default=None, help="an app already running (default: start app.py)")
    parser.add_argument("--pid", type=int, default=None, help="with --url: the app's process id, for memory")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    photos = [ROOT / "examples" / name for name in PHOTOS]
    if args.url:
        result = run_load(args.url, args.clients, args.requests, photos, args.cam, pid=args.pid)
    else:
        with launch_app() as (url, pid, cache):
            result = run_load(url, args.clients, args.requests, photos, args.cam, pid=pid, cache=cache)
    print(f"Load: {args.clients} gradio_client clients x {args.requests} requests, /predict with {args.cam}, "
          f"photos: {', '.join(PHOTOS)}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}\n")
    print(result.table())
    for e in result.error_examples:
        print(f"error: {e}")
    if args.json:
        args.json.write_text(json.dumps({**asdict(result), "rss_growth_mb": result.rss_growth_mb}, indent=2) + "\n")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
