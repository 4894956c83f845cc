"""Live mode speed: the server's frame rate, and glass-to-glass latency in Chromium's fake webcam.

    python benchmarks/live.py                          # both parts: 60 frames each way, 60 s of streaming per mode
    python benchmarks/live.py --seconds 20             # a shorter browser run (20 s per mode)
    python benchmarks/live.py --frames 100 --seconds 60 --json live.json
    python benchmarks/live.py --skip-browser           # the server part only

(a) Server: the Live tab's handler (``fer_demo.ui.live_tab.LiveHandler``: analyse, draw, JPEG, HTML)
on a 640x480 frame of examples/astronaut.jpg (one face), labels only and with the CAM overlay;
frames/s and ms per frame (mean over ``--frames``, the detector on every
``limits.LIVE_DETECT_EVERY``-th frame as in the app), and the plot's share of it.

(b) Browser: ``app.py`` runs as it does on a Space; Debian's Chromium (headless) opens the Live tab
with a fake webcam playing a Y4M video of the astronaut whose bottom strip carries the frame's
number as 14 black/white cells (``write_counter_y4m``). It streams ``--seconds`` with labels only,
then (a fresh page) as long with the heatmap. For every annotated frame shown, the page reads the
number in it and the number the camera is showing at that moment: their difference is the
glass-to-glass latency (camera frame to its annotated frame on screen) at the video's frame
interval (50 ms). Reports, per mode: the frames answered (shown) per second, the frames the
browser sent (POSTs to ``/stream/``), latency p50 and p90, and the first 10 s against the last
10 s (answered frames/s and latency p50: it must not slow down), and the share of the machine's CPU
(all cores = 100%) that Chromium's processes, the app's server process and everything else used while
it streamed (``/proc``; the browser shares the cores with the server here, as a visitor's would not). With ``--photos`` another visitor
sends a photo to ``/predict`` every 2 s meanwhile: its latency alone (5 before the stream) and
while someone streams.

The command line is printed first. Run it on an otherwise idle machine; the numbers move with the
CPU's load (the 1-minute load average is printed with the results).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "astronaut.jpg"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# The counter strip: CELLS cells across the bottom STRIP_PX rows; the first cell is always white and
# the last always black (they tell a mirrored frame), the 14 between are the frame number's bits.
CELLS, STRIP_PX = 16, 24
VIDEO_FPS, VIDEO_FRAMES = 20, 100  # a 5 s loop (46 MB): latencies up to 5 s are read unambiguously


def counter_frame(base: np.ndarray, n: int) -> np.ndarray:
    """``base`` (uint8 H x W x 3) with frame number ``n`` (< 2**14) in its bottom strip."""
    frame = base.copy()
    h, w = frame.shape[:2]
    bits = [1] + [(n >> (CELLS - 3 - i)) & 1 for i in range(CELLS - 2)] + [0]
    for i, bit in enumerate(bits):
        frame[h - STRIP_PX:, i * w // CELLS:(i + 1) * w // CELLS] = 255 if bit else 0
    return frame


def write_counter_y4m(photo: Path, dest: Path, width: int = 640, height: int = 480, fps: int = VIDEO_FPS,
                      frames: int = VIDEO_FRAMES) -> np.ndarray:
    """A YUV4MPEG2 (4:2:0, JPEG range) video for Chromium's fake webcam: ``photo`` scaled to fit
    against the left edge of a gray frame, frame ``n`` numbered in its bottom strip. Returns frame 0 (RGB)."""
    im = Image.open(photo).convert("RGB")
    im.thumbnail((width, height))
    canvas = Image.new("RGB", (width, height), (128, 128, 128))
    canvas.paste(im, (0, (height - im.height) // 2))
    base = np.asarray(canvas)
    with open(dest, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for n in range(frames):
            y, cb, cr = Image.fromarray(counter_frame(base, n)).convert("YCbCr").split()
            half = (width // 2, height // 2)
            fh.write(b"FRAME\n" + y.tobytes() + cb.resize(half, Image.Resampling.BILINEAR).tobytes()
                     + cr.resize(half, Image.Resampling.BILINEAR).tobytes())
    return counter_frame(base, 0)


# Installed before the page loads: count the frames the browser posts to the stream.
COUNT_SENT_JS = """
window.__live = {sent: [], shown: []};
const fetch0 = window.fetch;
window.fetch = function (input, init) {
  const u = typeof input === 'string' ? input : (input && input.url) || '';
  if (u.includes('/stream/') && !u.endsWith('/close')) window.__live.sent.push(performance.now());
  return fetch0.apply(this, arguments);
};
"""
# Installed once the Live tab is open: for every new annotated frame, the numbers in it and in the camera.
WATCH_JS = """
([cells, strip]) => {
  const W = window.__live;
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  function read(src, w, h) {
    if (!w || !h) return -1;
    canvas.width = w; canvas.height = h;
    ctx.drawImage(src, 0, 0, w, h);
    const row = ctx.getImageData(0, h - Math.round(strip / 2), w, 1).data;
    let bits = [];
    for (let i = 0; i < cells; i++) {
      const x = Math.floor((i + 0.5) * w / cells);
      bits.push(row[4 * x] + row[4 * x + 1] + row[4 * x + 2] > 384 ? 1 : 0);
    }
    if (!(bits[0] === 1 && bits[cells - 1] === 0)) bits = bits.reverse();
    if (!(bits[0] === 1 && bits[cells - 1] === 0)) return -1;
    let n = 0;
    for (let i = 1; i < cells - 1; i++) n = 2 * n + bits[i];
    return n;
  }
  const target = document.querySelector('#live-frame');
  let last = null;  // the frame number (data-frame) last recorded; Gradio may patch the same <img>
  new MutationObserver(() => {
    const box = target.querySelector('.fer-live-frame');
    const img = box && box.querySelector('img');
    if (!img || box.dataset.frame === last) return;
    last = box.dataset.frame;
    const frame = Number(last);
    img.decode().then(() => {
      const t = performance.now();
      const video = document.querySelector('#live-webcam video');
      W.shown.push({t, frame, shown: read(img, img.naturalWidth, img.naturalHeight),
                    live: video ? read(video, video.videoWidth, video.videoHeight) : -1});
    }).catch(() => {});
  }).observe(target, {childList: true, subtree: true, attributes: true, characterData: true});
}
"""


def server_rate(predictor, frames: int, show_cam: bool) -> dict:
    """The Live handler's mean time per 640x480 one-face frame (after a few warm-up frames)."""
    from types import SimpleNamespace

    from fer_demo.live import LiveSession, LiveSessions
    from fer_demo.ui import live_tab

    ticks = iter(np.arange(0, 1e6, 0.1))  # stream time: 10 frames/s, however fast this runs
    handler = live_tab.LiveHandler(predictor, LiveSessions(lambda: LiveSession(predictor,
                                                                               clock=lambda: float(next(ticks)))))
    frame = np.asarray(Image.open(ASTRONAUT).convert("RGB").resize((640, 480)))
    request = SimpleNamespace(session_hash="benchmark")
    for _ in range(6):
        handler(frame, show_cam, 0, request)
    session = handler.sessions.get("benchmark")
    plot_s, times = 0.0, []
    for _ in range(frames):
        start = time.perf_counter()
        live = session.process(frame, show_cam=show_cam)
        live_tab.frame_html(live), live_tab.status_text(live)
        mid = time.perf_counter()
        live_tab.face_html(live)
        end = time.perf_counter()
        times.append(end - start)
        plot_s += end - mid
        assert live is not None and len(live.result.faces) == 1
    mean = statistics.fmean(times)
    return {"mode": "labels + CAM" if show_cam else "labels", "frames": frames, "ms_per_frame": round(1000 * mean, 1),
            "p90_ms": round(1000 * float(np.percentile(times, 90)), 1), "frames_per_s": round(1 / mean, 1),
            "face_panel_ms": round(1000 * plot_s / frames, 2)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, threads: int | None = None) -> subprocess.Popen:
    """``app.py`` on ``port`` (with ``threads``: OMP_NUM_THREADS for its torch), once it answers."""
    env = {**os.environ, "PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.kill()
    raise RuntimeError("app.py did not answer within 300 s")


def start_streaming(page, ui_ms: int = 60_000) -> None:
    """On a page showing the app: open the Live tab, allow the (fake) webcam, press Record."""
    page.get_by_role("tab", name="Live").click()
    webcam = page.locator("#live-webcam")
    webcam.get_by_text("Click to Access Webcam").click()
    page.wait_for_function("() => { const v = document.querySelector('#live-webcam video');"
                           " return v && v.readyState >= 2 && v.videoWidth > 0; }", timeout=ui_ms)
    webcam.locator("button[aria-label='capture photo']").click()  # "Record" when streaming


def photo_latencies(url: str, stop: threading.Event | None = None, every_s: float = 2.0, count: int = 5) -> list[float]:
    """Seconds per ``/predict`` of the astronaut photo (Grad-CAM): one every ``every_s`` until ``stop``
    is set, or ``count`` in a row without ``stop``."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    times: list[float] = []
    while (not stop.is_set()) if stop is not None else len(times) < count:
        start = time.perf_counter()
        client.predict(handle_file(str(ASTRONAUT)), "gradcam", "predicted", "none", api_name="/predict")
        times.append(time.perf_counter() - start)
        if stop is not None:
            stop.wait(every_s)
    return times


def cpu_seconds_by_process() -> dict[int, tuple[str, float]]:
    """pid -> (command line, CPU seconds so far) for every process of this machine (Linux ``/proc``;
    {} elsewhere)."""
    out: dict[int, tuple[str, float]] = {}
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[int(entry.name)] = (cmd, (int(fields[11]) + int(fields[12])) / hz)
    return out


def cpu_shares(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], seconds: float,
               app_pid: int | None) -> dict:
    """Share of the machine's CPU (all cores = 100%) each group used between two snapshots: the browser
    (Chromium's processes), the app's server process, everything else."""
    used = {"browser": 0.0, "server": 0.0, "other": 0.0}
    for pid, (cmd, t) in after.items():
        delta = t - before[pid][1] if pid in before else t
        if pid not in before and delta > 0.05 * seconds * (os.cpu_count() or 1):
            delta = 0.0  # started meanwhile with a history we cannot split: not counted
        group = "server" if pid == app_pid else "browser" if "chrom" in cmd or "headless_shell" in cmd else "other"
        used[group] += max(0.0, delta)
    total = seconds * (os.cpu_count() or 1)
    return {f"cpu_{k}_pct": round(100 * v / total) for k, v in used.items()}


def window_stats(shown: list[dict], lat: list[tuple[float, float]], t_from: float, t_to: float) -> dict:
    """Answered frames/s and latency p50 (ms) among the frames shown between ``t_from`` and ``t_to`` (ms)."""
    n = sum(t_from <= s["t"] < t_to for s in shown)
    window = [ms for t, ms in lat if t_from <= t < t_to]
    return {"shown_per_s": round(n / ((t_to - t_from) / 1000), 2),
            "latency_median_ms": round(statistics.median(window)) if window else None}


def browser_latency(url: str, video: Path, seconds: float, chromium: Path = CHROMIUM, photos: bool = False,
                    show_cam: bool = False, edge_s: float = 10.0, app_pid: int | None = None) -> dict:
    """Stream for ``seconds`` from the fake webcam playing ``video``; latency and rates as the page sees them.

    ``show_cam``: with the heatmap overlay (the Live tab's checkbox) instead of labels only. ``edge_s``:
    the first and last this many seconds are also reported on their own (does it slow down?). With
    ``photos``, another visitor sends a photo to ``/predict`` every 2 s meanwhile (and 5 times before
    the stream, for comparison): photo latency alone and while someone streams.
    """
    from playwright.sync_api import sync_playwright

    alone = photo_latencies(url) if photos else []
    stop, during = threading.Event(), []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"])
            context.add_init_script(COUNT_SENT_JS)
            page = context.new_page()
            page.goto(url)
            page.get_by_role("tab", name="Live").wait_for(timeout=60_000)
            if show_cam:
                page.get_by_role("tab", name="Live").click()
                page.locator("#live-cam input[type=checkbox]").check()
            start_streaming(page)
            page.evaluate(WATCH_JS, [CELLS, STRIP_PX])
            # The clock starts at the first answered frame (the first analysis may load lazily).
            page.locator("#live-frame .fer-live-frame").wait_for(timeout=300_000)
            t0 = page.evaluate("performance.now()")
            cpu0, wall0 = cpu_seconds_by_process(), time.monotonic()
            if photos:
                other = threading.Thread(target=lambda: during.extend(photo_latencies(url, stop)))
                other.start()
            time.sleep(seconds)
            cpu = cpu_shares(cpu0, cpu_seconds_by_process(), time.monotonic() - wall0, app_pid)
            data = page.evaluate("window.__live")
            camera = page.evaluate("(() => { const v = document.querySelector('#live-webcam video');"
                                   " return v ? [v.videoWidth, v.videoHeight] : null; })()")
            t1 = page.evaluate("performance.now()")
        finally:
            if photos:
                stop.set()
                other.join()
            browser.close()
    shown = [s for s in data["shown"] if t0 <= s["t"] < t1]
    sent = [t for t in data["sent"] if t0 <= t < t1]
    read = [s for s in shown if s["shown"] >= 0 and s["live"] >= 0]
    frame_ms = 1000 / VIDEO_FPS
    lat_t = [(s["t"], ((s["live"] - s["shown"]) % VIDEO_FRAMES) * frame_ms) for s in read]
    lat = [ms for _, ms in lat_t]
    span_s = (t1 - t0) / 1000
    edge_ms = 1000 * min(edge_s, span_s / 2)
    first, last = window_stats(shown, lat_t, t0, t0 + edge_ms), window_stats(shown, lat_t, t1 - edge_ms, t1)
    return {"mode": "labels + CAM" if show_cam else "labels", "seconds": round(span_s, 1), "camera": camera,
            "frames_sent": len(sent), "sent_per_s": round(len(sent) / span_s, 2),
            "frames_shown": len(shown), "shown_per_s": round(len(shown) / span_s, 2),
            "latency_frames_read": len(lat),
            "latency_median_ms": round(statistics.median(lat)) if lat else None,
            "latency_p90_ms": round(float(np.percentile(lat, 90))) if lat else None,
            "edge_s": round(edge_ms / 1000, 1),
            "first_shown_per_s": first["shown_per_s"], "last_shown_per_s": last["shown_per_s"],
            "first_latency_median_ms": first["latency_median_ms"], "last_latency_median_ms": last["latency_median_ms"],
            **cpu,
            "photo_alone_median_ms": round(1000 * statistics.median(alone)) if alone else None,
            "photo_while_streaming_median_ms": round(1000 * statistics.median(during)) if photos and during else None,
            "photo_while_streaming_max_ms": round(1000 * max(during)) if photos and during else None}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60, help="frames per server measurement")
    # 60 s per mode: about one turn (limits.LIVE_TIME_LIMIT_S), after which the stream rejoins the queue.
    ap.add_argument("--seconds", type=float, default=60, help="seconds of streaming in the browser, per mode")
    ap.add_argument("--skip-browser", action="store_true", help="only the server-side frame rate")
    ap.add_argument("--skip-server", action="store_true", help="only the browser part")
    ap.add_argument("--photos", action="store_true", help="another visitor sends a photo every 2 s meanwhile")
    ap.add_argument("--threads", type=int, help="torch threads for (a) (default: torch's default)")
    ap.add_argument("--app-threads", type=int,
                    help="OMP_NUM_THREADS for the app in (b) (default: torch's default; 1 is kinder on a busy CPU)")
    ap.add_argument("--url", help="an app already running (default: start app.py on a free port)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    command = "python benchmarks/live.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"$ {command.strip()}\n(1-minute load average at the start: {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)")
    sys.path.insert(0, str(ROOT))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from fer_demo import limits

    results: dict = {"command": command.strip(), "load_start": round(os.getloadavg()[0], 1),
                     "threads": torch.get_num_threads(), "detect_every": limits.LIVE_DETECT_EVERY,
                     "stream_every_s": limits.LIVE_STREAM_EVERY_S, "app_threads": args.app_threads, "server": [],
                     "browser": []}
    if not args.skip_server:
        from fer_demo.pipeline import Predictor

        predictor = Predictor(weights_path=ROOT / "weights" / "fer_vgg19.safetensors")
        for show_cam in (False, True):
            results["server"].append(server_rate(predictor, args.frames, show_cam))
        del predictor
        print("| server, 640x480, one face | ms/frame | p90 ms | frames/s | bars+plot ms |\n|---|---:|---:|---:|---:|")
        for r in results["server"]:
            print(f"| {r['mode']} | {r['ms_per_frame']} | {r['p90_ms']} | {r['frames_per_s']} | {r['face_panel_ms']} |")
    if not args.skip_browser:
        with tempfile.TemporaryDirectory() as tmp:
            video = Path(tmp) / "counter.y4m"
            write_counter_y4m(ASTRONAUT, video)
            proc = None if args.url else start_app(port := free_port(), args.app_threads)
            try:
                url = args.url or f"http://localhost:{port}/"
                for show_cam in (False, True):
                    results["browser"].append(browser_latency(url, video, args.seconds, photos=args.photos,
                                                              show_cam=show_cam,
                                                              app_pid=None if proc is None else proc.pid))
            finally:
                if proc is not None:
                    proc.terminate()
                    proc.wait(30)
        results["load_end"] = round(os.getloadavg()[0], 1)
        print(f"\nbrowser, fake camera at {VIDEO_FPS} frames/s, a frame sent every {limits.LIVE_STREAM_EVERY_S:g} s "
              f"at most; load average {results['load_start']} at the start, {results['load_end']} at the end")
        print("| mode (camera) | s | sent/s | answered/s | p50 ms | p90 ms | first/last 10 s: answered/s | p50 ms "
              "| CPU: browser / server / other |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for b in results["browser"]:
            print(f"| {b['mode']} ({'x'.join(map(str, b['camera'] or ['?']))}) | {b['seconds']:.0f} | {b['sent_per_s']} | {b['shown_per_s']} | {b['latency_median_ms']} "
                  f"| {b['latency_p90_ms']} | {b['first_shown_per_s']} / {b['last_shown_per_s']} "
                  f"| {b['first_latency_median_ms']} / {b['last_latency_median_ms']} "
                  f"| {b['cpu_browser_pct']}% / {b['cpu_server_pct']}% / {b['cpu_other_pct']}% |")
            if b.get("photo_alone_median_ms"):
                print(f"  a photo on /predict (Grad-CAM): {b['photo_alone_median_ms']} ms alone, "
                      f"{b['photo_while_streaming_median_ms']} ms (max {b['photo_while_streaming_max_ms']} ms) "
                      "while someone streams")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
