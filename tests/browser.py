"""Headless Chromium for the HTML report: the tests' browser, and `make screenshot`.

Debian's `chromium` and `chromium-driver` (the Makefile's `tools` target installs them where it
can), driven by selenium with the driver's path given, so Selenium Manager never looks for a
driver on the network. The page is opened from a `file://` URL with the network emulated
offline and every host name unresolvable; the DevTools performance log lists every request the
page makes, and the browser log its console messages.

    python -m tests.browser REPORT.html SHOT.png   # the screenshot kept in docs/
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.foreign import foreign_env

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver", "/usr/bin/chromedriver")


def find_browser() -> tuple[str, str] | str:
    """(browser, driver) paths, or the reason there is none."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = next((p for p in map(shutil.which, DRIVERS) if p), None)
    if browser is None or driver is None:
        return "no chromium and chromium-driver (make tools installs them as root on Debian)"
    return browser, driver


def start(browser: str, driver: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",  # as root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: nothing can reach a network
        "--proxy-server=http://127.0.0.1:9",
        "--window-size=1280,800",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(executable_path=driver, env=foreign_env())
    session = webdriver.Chrome(service=service, options=options)
    session.execute_cdp_cmd("Network.enable", {})
    session.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    return session


@dataclass
class Load:
    """What opening a page did: every request URL and every console message."""

    requests: list[str]
    console: list[dict[str, Any]]


def open_page(session: Any, path: Path, width: int, height: int, mobile: bool) -> Load:
    """Open `path` at a viewport of width × height CSS pixels (a phone's when `mobile`)."""
    session.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
    session.get_log("performance")  # drop what came before
    session.get_log("browser")
    session.get(path.resolve().as_uri())
    session.execute_script("return document.fonts ? document.fonts.ready.then(() => true) : true")
    requests = []
    for entry in session.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    return Load(requests, session.get_log("browser"))


def screenshot(session: Any, full_page: bool = False) -> bytes:
    """The viewport (or the whole page) as PNG bytes."""
    if not full_page:
        return base64.b64decode(
            session.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})["data"]
        )
    size = session.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = session.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    return base64.b64decode(shot["data"])


def palette_png(png: bytes) -> bytes:
    """The screenshot with its 256 most frequent colours, kept exact (the page's flat fills and
    text), every other pixel (anti-aliasing) mapped to the nearest of them: a third of the size,
    no visible change."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int64)
    keys = (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]
    colours, inverse, counts = np.unique(keys.reshape(-1), return_inverse=True, return_counts=True)
    top = colours[np.argsort(-counts, kind="stable")[:256]]
    palette = np.stack([(top >> 16) & 255, (top >> 8) & 255, top & 255], axis=1)
    every = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1)
    nearest = ((every[:, None, :] - palette[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    image = Image.fromarray(nearest[inverse].astype(np.uint8).reshape(keys.shape), "P")
    image.putpalette(palette.astype(np.uint8).reshape(-1).tolist())
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def main(argv: list[str]) -> int:
    """Write a full-page screenshot of REPORT at 1280 CSS pixels wide to SHOT (a small PNG)."""
    if len(argv) != 2:
        print("usage: python -m tests.browser REPORT.html SHOT.png", file=sys.stderr)
        return 2
    found = find_browser()
    if isinstance(found, str):
        print(f"error: {found}", file=sys.stderr)
        return 2
    session = start(*found)
    try:
        open_page(session, Path(argv[0]), 1280, 800, mobile=False)
        png = screenshot(session, full_page=True)
    finally:
        session.quit()
    Path(argv[1]).write_bytes(palette_png(png))
    print(f"{argv[1]}: {len(Path(argv[1]).read_bytes()):,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
