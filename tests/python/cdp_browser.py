"""cdp_browser.py — a real headless Chromium driven over the DevTools protocol, for the dashboard
test.

Browser(tmp_dir) starts Debian's /usr/bin/chromium (--headless=new, its own process group, a
fresh profile in tmp_dir, DevTools on a free port read from tmp_dir/DevToolsActivePort), opens a
page target and talks to it with python3-websocket. evaluate() runs JavaScript in the page
(awaiting promises) and returns the value; wait_for() polls an expression until it is truthy.
Uncaught page exceptions and console errors are collected in .errors. close() (or leaving the
`with` block) kills Chromium's whole process group, whatever happened before.
"""
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import websocket

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


class CdpError(RuntimeError):
    pass


class Browser:
    def __init__(self, tmp_dir, width=1280, height=900, start_timeout=60):
        self.dir = Path(tmp_dir)
        self.profile = self.dir / "chromium-profile"
        self.profile.mkdir(parents=True, exist_ok=True)
        self.errors = []    # uncaught exceptions and console.error messages of the page
        self.events = []    # other DevTools events, oldest first (trimmed)
        self.next_id = 0
        self.ws = None
        self.log = open(self.dir / "chromium.log", "wb")
        args = [CHROMIUM, "--headless=new", "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--mute-audio",
                "--disable-dev-shm-usage", f"--window-size={width},{height}", "about:blank"]
        # Its own session (process group), so close() can end Chromium and every helper process
        # it forked, and nothing else.
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, start_new_session=True)
        try:
            self._connect(start_timeout)
        except BaseException:
            self.close()
            raise

    def _connect(self, timeout):
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.time() + timeout
        port = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise CdpError(f"chromium exited with {self.proc.returncode}: {self.chromium_log()}")
            if port_file.exists():
                lines = port_file.read_text().split("\n")
                if lines and lines[0].strip().isdigit():
                    port = int(lines[0])
                    break
            time.sleep(0.1)
        if port is None:
            raise CdpError(f"chromium wrote no DevTools port in {timeout}s: {self.chromium_log()}")
        self.devtools = f"http://127.0.0.1:{port}"
        page = None
        while time.time() < deadline and page is None:
            with urllib.request.urlopen(self.devtools + "/json/list", timeout=10) as r:
                targets = json.loads(r.read())
            page = next((t for t in targets if t.get("type") == "page"), None)
            if page is None:
                time.sleep(0.1)
        if page is None:
            raise CdpError("chromium has no page target")
        # suppress_origin: Chromium refuses DevTools websockets that send an Origin it was not
        # told to allow (--remote-allow-origins); a client without an Origin is accepted.
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.send("Runtime.enable")
        self.send("Page.enable")
        self.send("Log.enable")

    def chromium_log(self):
        self.log.flush()
        return (self.dir / "chromium.log").read_text(errors="replace")[-3000:]

    # ---- protocol -------------------------------------------------------------------------
    def send(self, method, params=None, timeout=60):
        """Sends one command and returns its result; events read meanwhile are recorded."""
        self.next_id += 1
        msg_id = self.next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise CdpError(f"no answer to {method} within {timeout}s")
            self.ws.settimeout(left)
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise CdpError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._record(msg)

    def _record(self, msg):
        method, params = msg["method"], msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            desc = (d.get("exception") or {}).get("description") or d.get("text")
            self.errors.append(f"exception: {desc}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append("console.error: " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            e = params["entry"]
            self.errors.append(f"log: {e.get('text')} {e.get('url', '')}")
        else:
            self.events.append(msg)
            del self.events[:-500]

    def evaluate(self, expression, timeout=60):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
            "timeout": int(timeout * 1000)}, timeout=timeout + 5)
        if "exceptionDetails" in result:
            d = result["exceptionDetails"]
            desc = (d.get("exception") or {}).get("description") or d.get("text")
            raise CdpError(f"evaluating {expression[:200]!r}: {desc}")
        return result.get("result", {}).get("value")

    def navigate(self, url, timeout=60):
        """Opens url and waits until the document has loaded."""
        result = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise CdpError(f"navigating to {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout=timeout)

    def wait_for(self, expression, timeout=30, interval=0.2, message=None):
        """Polls a JavaScript expression until it is truthy; returns its value (true for a DOM
        node, which does not cross the protocol as a value)."""
        deadline = time.time() + timeout
        value = None
        while time.time() < deadline:
            value = self.evaluate(f"(v => v instanceof Node ? true : v)({expression})")
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"{message or expression} not true within {timeout}s (last value {value!r}); "
                             f"page errors: {self.errors}")

    def set_viewport(self, width, height, mobile=False):
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    # ---- shutdown -------------------------------------------------------------------------
    def close(self):
        """Ends Chromium's process group (SIGTERM, then SIGKILL) and removes the profile."""
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.proc is not None:
            try:  # helpers (renderer, zygote) may outlive the main process: end the group
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.proc.poll() is None:
                self.proc.wait(timeout=10)
        if not self.log.closed:
            self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
