"""A real browser for the report tests: headless Chromium driven over the DevTools protocol (CDP).

Why CDP and not `chromium --dump-dom`: one browser process serves every check (phone and desktop
widths, a screenshot, several pages), and console errors come from the browser itself rather
than from a script inside the page. The page's target reports them as events:
`Runtime.exceptionThrown` (an uncaught error in a script), `Runtime.consoleAPICalled` of type
error/assert (`console.error`), and `Log.entryAdded` at level error (what the browser logs on its
own: a resource that fails to load, a blocked request, a policy violation). An inline
`window.onerror` would miss the last kind and errors raised before it is installed; parsing
`--enable-logging=stderr` depends on the build's log format. The protocol speaks JSON over a pipe
(`--remote-debugging-pipe`: commands on fd 3, replies on fd 4, each message ended by a NUL byte),
so it needs no network port and nothing beyond the standard library.

Only Chromium's stable protocol domains are used (Target, Page, Runtime, Log, Emulation).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Debian's package is `chromium`; the others are other distributions' names for the same browser.
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((path for name in NAMES if (path := shutil.which(name))), None)
NO_BROWSER = "no headless browser (chromium) installed; .ci/run installs Debian's chromium"

FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root in a container, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--remote-debugging-pipe",
]
PHONE = {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True}
DESKTOP = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}


class BrowserError(RuntimeError):
    pass


def _high_fd(fd: int) -> int:
    """The same pipe end at a number >= 10, so moving the ends to fds 3 and 4 cannot clobber one."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


# Puts two inherited pipe ends where Chromium looks for them (it reads fd 3, writes fd 4), then
# becomes the browser. (A shell cannot do it portably: dash takes single-digit fds only.)
_TRAMPOLINE = (
    "import os, sys\n"
    "r, w = int(sys.argv[1]), int(sys.argv[2])\n"
    "os.dup2(r, 3); os.dup2(w, 4); os.close(r); os.close(w)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


class Chromium:
    """One headless Chromium; `open(url, viewport)` gives a `Page`. Use as a context manager."""

    def __init__(self, profile: Path, timeout: float = 60.0):
        if BROWSER is None:
            raise BrowserError(NO_BROWSER)
        self.timeout = timeout
        to_r, to_w = map(_high_fd, os.pipe())
        from_r, from_w = map(_high_fd, os.pipe())
        self.log = Path(profile) / "chromium.log"
        Path(profile).mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _TRAMPOLINE, str(to_r), str(from_w), BROWSER]
                + [*FLAGS, f"--user-data-dir={Path(profile) / 'profile'}", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(to_r, from_w),
                start_new_session=True,
            )
        os.close(to_r)
        os.close(from_w)
        self._out, self._in = to_w, from_r
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []

    # -- the protocol ---------------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its reply; events that arrive meanwhile are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_for(self, method: str, session: str) -> dict:
        """The first event `method` of `session` (one already received counts)."""
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method and event.get("sessionId") == session:
                    return self._events.pop(i)
            event = self._read()
            if "method" in event:
                self._events.append(event)

    def events(self, session: str) -> list[dict]:
        return [e for e in self._events if e.get("sessionId") == session]

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise BrowserError(f"no reply from the browser in {self.timeout:.0f} s; see {self.log}")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise BrowserError(f"the browser exited ({self.proc.poll()}); see {self.log}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    # -- pages --------------------------------------------------------------------------------
    def open(self, url: str, viewport: dict = DESKTOP) -> Page:
        """A new tab at `viewport` (CSS pixels; `mobile` honours <meta name=viewport>), loaded."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        page = Page(self, target, session)
        page.resize(viewport)
        self.send("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session)
        return page

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close")
                except (BrowserError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            os.close(self._out)
            os.close(self._in)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    def __init__(self, browser: Chromium, target: str, session: str):
        self.browser, self.target, self.session = browser, target, session

    def resize(self, viewport: dict) -> None:
        self.browser.send("Emulation.setDeviceMetricsOverride", viewport, self.session)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (awaited when it is a promise), as JSON."""
        reply = self.browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, self.session
        )
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression[:60]}…: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def console_errors(self) -> list[str]:
        """Every error the page raised or logged so far (see the module's docstring)."""
        errors = []
        for event in self.browser.events(self.session):
            params = event["params"]
            if event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(f"{params['entry'].get('source', '')}: {params['entry']['text']}")
        return errors

    def screenshot(self, scale: float = 0.5) -> bytes:
        """A PNG of the whole page (not only the viewport), scaled down to keep it small."""
        width, height = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": scale}
        reply = self.browser.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}, self.session
        )
        return base64.b64decode(reply["data"])

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})


def ink_fraction(png: bytes, background=(1.0, 1.0, 1.0), tolerance: float = 0.08) -> float:
    """The share of a PNG's pixels that differ from the background colour (0 for a blank page)."""
    import io

    import numpy as np
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(png), format="png")[..., :3]
    return float((np.abs(pixels - np.asarray(background)).max(axis=-1) > tolerance).mean())


# What a reader would see, measured in the page: every image (decoded? natural and drawn size),
# how wide the document is against the viewport, text that runs past the right edge, the table
# wrappers, formula cells broken over lines, and the provenance table's rows.
MEASURE = """
(async () => {
  const imgs = Array.from(document.images);
  const decoded = await Promise.all(imgs.map(i => i.decode().then(() => true, () => false)));
  const box = e => e.getBoundingClientRect();
  const text = Array.from(document.querySelectorAll('h1, h2, p, li, figcaption, .banner'));
  return {
    innerWidth: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    imagesLoaded: document.body ? document.body.getAttribute('data-images-loaded') : null,
    images: imgs.map((i, k) => ({alt: i.alt, decoded: decoded[k], naturalWidth: i.naturalWidth,
      naturalHeight: i.naturalHeight, width: box(i).width, height: box(i).height, right: box(i).right})),
    textPastTheEdge: text.filter(e => box(e).right > window.innerWidth + 0.5)
      .map(e => e.tagName + ': ' + e.textContent.slice(0, 60)),
    tables: Array.from(document.querySelectorAll('table')).map(t => ({
      wrapped: t.parentElement.classList.contains('scroll'),
      overflowX: getComputedStyle(t.parentElement).overflowX,
      wrapperRight: box(t.parentElement).right,
      scrollWidth: t.parentElement.scrollWidth, clientWidth: t.parentElement.clientWidth})),
    codeLines: Array.from(document.querySelectorAll('td code')).map(c => c.getClientRects().length),
    provenance: Array.from(document.querySelectorAll('table.provenance th')).map(th => th.textContent),
  };
})()
"""
