"""Re-make docs/screenshot.png: the Analyze tab with a result, as the README shows it.

    python docs/screenshot.py                                  # the three-face example, shipped weights
    python docs/screenshot.py --photo examples/astronaut.jpg --out /tmp/shot.png
    python docs/screenshot.py --width 390 --height 844 --out /tmp/phone.png   # a phone

Starts the app in this process on a free localhost port (the shipped weights), drives Debian's
Chromium headless through Playwright (never a downloaded browser), uploads the photo (which is
analysed at once), waits for every face's card and saves a full-page screenshot. Re-run it
whenever the weights or the page change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photo", type=Path, default=ROOT / "examples" / "group_three_faces.jpg")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    p.add_argument("--weights", type=Path, default=ROOT / "weights" / "fer_vgg19.safetensors")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=900)
    args = p.parse_args(argv)

    from playwright.sync_api import sync_playwright

    import app
    from fer_demo.pipeline import Predictor

    demo = app.build_demo(Predictor(weights_path=args.weights), weights=args.weights)
    demo.queue(**app.QUEUE)
    demo.launch(**{**app.launch_settings(), "server_name": "127.0.0.1", "server_port": None, "quiet": True,
                   "prevent_thread_lock": True})  # the first free port from 7860 on
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(demo.local_url)
            page.locator("#analyze-button").wait_for(timeout=60_000)
            page.locator("#photo input[type=file]").set_input_files(str(args.photo))
            page.locator("#photo img").first.wait_for(timeout=30_000)
            page.locator("#face-cards .fer-card").first.wait_for(timeout=120_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#annotated img, #face-cards img')]"
                ".every(i => i.complete && i.naturalWidth > 0)", timeout=30_000)
            page.wait_for_timeout(1000)  # let the page settle (and a phone scroll to the results)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        demo.close()
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
