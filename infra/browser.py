"""A headless Chromium (Debian's package, installed by infra.tools.ensure_chromium) driven over the Chrome
DevTools Protocol: open a page at a phone's size, read values with JavaScript, save a screenshot. Used by
the fair board's browser test; no browser automation package needed (aiohttp speaks the protocol's
WebSocket)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from infra.errors import InfraError
from infra.tools import ensure_chromium

# without the background-networking flags Chromium keeps calling Google's hosts, which a closed network refuses
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--mute-audio")
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


class Browser:
    """``async with Browser(port) as b: await b.open(url); await b.evaluate(js); await b.screenshot(path)``."""

    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self._proc: subprocess.Popen[bytes] | None = None
        self._profile = Path(tempfile.mkdtemp(prefix="alliance-chromium-"))
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Browser:
        self._proc = await asyncio.to_thread(self._start, await asyncio.to_thread(ensure_chromium))
        self._session = aiohttp.ClientSession()
        deadline = time.monotonic() + 60
        while True:
            try:
                async with self._session.get(f"http://127.0.0.1:{self.port}/json/list") as r:
                    pages = [t for t in await r.json() if t.get("type") == "page"]
                if pages:
                    break
            except aiohttp.ClientError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise InfraError(f"Chromium did not open its DevTools port {self.port}; see {self.log}")
            await asyncio.sleep(0.25)
        self._ws = await self._session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        await self.send("Emulation.setDeviceMetricsOverride", PHONE)
        return self

    def _start(self, chromium: str) -> subprocess.Popen[bytes]:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            return subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={self._profile}",
                                     f"--remote-debugging-port={self.port}", "about:blank"],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        shutil.rmtree(self._profile, ignore_errors=True)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One DevTools command; its result (events arriving meanwhile are skipped)."""
        assert self._ws is not None
        ident = next(self._ids)
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params or {}}))
        while True:
            message = await asyncio.wait_for(self._ws.receive_json(), timeout=30)
            if message.get("id") == ident:
                if "error" in message:
                    raise InfraError(f"Chromium: {method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    async def open(self, url: str, within: float = 60) -> None:
        """Navigate to ``url`` and wait until that document has loaded (before it, the previous page, e.g.
        about:blank, would answer the next evaluation)."""
        await self.send("Page.navigate", {"url": url})
        target = json.dumps(url.split("#", 1)[0])
        await self.wait_for(f"location.href.split('#')[0] === {target} && document.readyState === 'complete'",
                            within)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise InfraError(f"Chromium: {expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float) -> Any:
        """Until ``expression`` is truthy in the page; its value (InfraError with the last one on timeout)."""
        deadline, value = time.monotonic() + within, None
        while time.monotonic() < deadline:
            try:
                value = await self.evaluate(expression)
            except InfraError as exc:  # e.g. the page's elements do not exist yet
                value = str(exc)[:300]
            else:
                if value:
                    return value
            await asyncio.sleep(0.25)
        raise InfraError(f"the page did not reach {expression!r} within {within:.0f}s (last: {value!r})")

    async def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode((await self.send("Page.captureScreenshot", {"format": "png"}))["data"])
        await asyncio.to_thread(_write, path, data)
        return data


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
