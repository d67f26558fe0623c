"""A small client of the Chrome DevTools Protocol over a stdlib WebSocket (RFC 6455: one
client, text frames, masked as clients must): enough to drive headless Chromium through the
console like a person (type, press Enter, follow links) and take screenshots. No Playwright
or Selenium: neither is installable offline here, and this needs nothing but Chromium."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

START_TIMEOUT = 60.0  # seconds for a cold Chromium to write its DevTools port
READ_TIMEOUT = 60.0  # seconds without a message from the browser: a hang, not slowness


class WebSocket:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=READ_TIMEOUT)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("the browser closed the WebSocket handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"WebSocket handshake refused: {head[:80]!r}")

    def send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def receive(self) -> str:
        message = b""
        while True:
            first, second = self._exactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", self._exactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", self._exactly(8))
            payload = self._exactly(size)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("the browser closed the WebSocket")
            if opcode in (0x9, 0xA):  # ping/pong: the browser does not expect an answer here
                continue
            message += payload
            if first & 0x80:  # FIN
                return message.decode()

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the browser closed the WebSocket")
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


class Page:
    """One browser tab: commands by id, events kept until asked for."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.logs: list[str] = []  # every console and security message, for the whole walk

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.receive())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._keep(message)

    def wait_for(self, method: str) -> dict[str, Any]:
        while True:
            for index, event in enumerate(self.events):
                if event["method"] == method:
                    return self.events.pop(index)
            self._keep(json.loads(self.ws.receive()))

    def _keep(self, message: dict[str, Any]) -> None:
        if message.get("method") == "Log.entryAdded":
            entry = message["params"]["entry"]
            self.logs.append(f"{entry.get('source')}: {entry.get('text')}")
        elif "method" in message:
            self.events.append(message)

    def style(self, selector: str, name: str) -> str:
        computed = self.call("CSS.getComputedStyleForNode", nodeId=self._node(selector))
        return next(str(p["value"]) for p in computed["computedStyle"] if p["name"] == name)

    def goto(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def text(self, selector: str = "body") -> str:
        node = self._node(selector)
        html = self.call("DOM.getOuterHTML", nodeId=node)["outerHTML"]
        return str(html)

    def attribute(self, selector: str, name: str) -> str:
        attributes = self.call("DOM.getAttributes", nodeId=self._node(selector))["attributes"]
        pairs = dict(zip(attributes[::2], attributes[1::2], strict=True))
        return str(pairs[name])

    def type_into(self, selector: str, text: str) -> None:
        self.call("DOM.focus", nodeId=self._node(selector))
        self.call("Input.insertText", text=text)

    def press_enter(self) -> None:
        self.events.clear()
        key = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
        self.call("Input.dispatchKeyEvent", type="keyDown", text="\r", **key)
        self.call("Input.dispatchKeyEvent", type="keyUp", **key)
        self.wait_for("Page.loadEventFired")

    def screenshot(self, path: Path) -> bytes:
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.call(
            "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True
        )
        data = base64.b64decode(shot["data"])
        path.write_bytes(data)
        return data

    def _node(self, selector: str) -> int:
        root = self.call("DOM.getDocument", depth=0)["root"]["nodeId"]
        node = int(self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"])
        if not node:
            raise LookupError(f"no element matches {selector!r}")
        return node


@contextmanager
def browser(chromium: Path, flags: tuple[str, ...], profile: Path) -> Iterator[Page]:
    command = [
        str(chromium),
        *flags,
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "--window-size=1280,900",
        "about:blank",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ws = None
    try:
        port = _devtools_port(profile, process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
            targets = json.load(answer)
        target = next(t for t in targets if t["type"] == "page")
        ws = WebSocket(target["webSocketDebuggerUrl"])
        page = Page(ws)
        for domain in ("Page", "DOM", "CSS", "Log"):
            page.call(f"{domain}.enable")
        page.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield page
    finally:
        if ws is not None:
            ws.close()
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _devtools_port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    """Chromium writes the port it chose into its profile once it listens."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Chromium exited with {process.returncode} while starting")
        if marker.exists():
            lines = marker.read_text().splitlines()
            if lines and lines[0].isdigit():
                return int(lines[0])
        time.sleep(0.1)
    raise TimeoutError(f"Chromium did not open its DevTools port within {START_TIMEOUT:g}s")
