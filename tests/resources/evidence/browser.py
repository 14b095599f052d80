"""Open a local page in Debian's chromium, headless, over the DevTools protocol: what it logged
as errors (uncaught exceptions, console.error, browser log errors) and what it rendered.

No browser is downloaded: the system's chromium is used, installed with apt-get when it is
missing and the test runs as root (tests/resources/evidence/conftest.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from websockets.sync.client import connect

CANDIDATES = ("chromium", "chromium-browser")
ERROR_CONSOLE_TYPES = {"error", "assert"}


def find_chromium() -> str | None:
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def install_chromium() -> str:
    """apt-get install chromium; returns apt's output tail when it did not work."""
    done = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    return (done.stdout + done.stderr)[-1500:]


@dataclass
class Rendered:
    errors: list[str] = field(default_factory=list)
    text: str = ""
    plots: int = 0


class DevTools:
    """One page target's DevTools websocket: commands and the events that arrive meanwhile."""

    def __init__(self, url: str) -> None:
        self.ws = connect(url, max_size=None, open_timeout=30)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.ws.recv(timeout=deadline - time.monotonic())))

    def evaluate(self, expression: str) -> object:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    def errors(self) -> list[str]:
        out = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                out.append(
                    "Uncaught " + details.get("exception", {}).get("description", str(details))
                )
            elif method == "Runtime.consoleAPICalled" and params["type"] in ERROR_CONSOLE_TYPES:
                out.append("console." + params["type"] + ": " + " ".join(
                    str(a.get("value", a.get("description"))) for a in params["args"]))  # fmt: skip
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                out.append("log: " + params["entry"]["text"])
        return out


def render(chromium: str, page: Path, plots_expected: int = 0, timeout: float = 90) -> Rendered:
    """Load ``page`` (a file) headless; wait for its load and ``plots_expected`` plotly charts."""
    with tempfile.TemporaryDirectory(prefix="assay-chromium-") as profile:
        process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--remote-debugging-port=0", f"--user-data-dir={profile}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            port = _devtools_port(Path(profile) / "DevToolsActivePort", process, timeout)
            tools = DevTools(_page_target(port))
            for domain in ("Runtime", "Log", "Page"):
                tools.send(f"{domain}.enable")
            tools.send("Page.navigate", {"url": page.resolve().as_uri()})
            tools.wait_for("Page.loadEventFired", timeout)
            plots = _wait_for_plots(tools, plots_expected, timeout)
            text = tools.evaluate("document.body.innerText")
            rendered = Rendered(tools.errors(), text, plots)
            tools.ws.close()
            return rendered
        finally:
            process.terminate()
            process.wait(timeout=30)


def _devtools_port(path: Path, process: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        if path.exists() and path.read_text().strip():
            return int(path.read_text().splitlines()[0])
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")


def _page_target(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
        targets = json.load(answer)
    return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


def _wait_for_plots(tools: DevTools, expected: int, timeout: float) -> int:
    """How many plotly charts have drawn their SVG."""
    query = "[...document.querySelectorAll('.js-plotly-plot')]"
    query += ".filter(p => p.querySelector('.main-svg')).length"
    deadline = time.monotonic() + timeout
    while True:
        plots = tools.evaluate(query) or 0
        if plots >= expected or time.monotonic() > deadline:
            return plots
        time.sleep(0.2)
