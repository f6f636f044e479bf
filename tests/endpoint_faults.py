"""A fault-injecting HTTP proxy for the endpoint tests (tests/test_endpoint.py): it stands between
our OpenAI client and a real server, so the faults the client meets are real HTTP ones."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultProxy:
    """A real HTTP proxy between our client and vLLM's server that injects faults: HTTP 500 for the
    requests whose prompt contains ``fail_marker``, a ``slow_s`` pause before those containing
    ``slow_marker``.  It counts every completion request by prompt and the most in flight at once."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removesuffix("/v1")
        self.fail_marker: str | None = None
        self.slow_marker: str | None = None
        self.slow_s = 0.0
        self.delay_s = 0.0  # every completion request: so that concurrency shows
        self.prompts: list[str] = []
        self.peak = 0
        self._inflight = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._forward(b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                prompt = str(json.loads(body).get("prompt", ""))
                with proxy._lock:
                    proxy.prompts.append(prompt)
                    proxy._inflight += 1
                    proxy.peak = max(proxy.peak, proxy._inflight)
                try:
                    time.sleep(proxy.delay_s)
                    if proxy.fail_marker and proxy.fail_marker in prompt:
                        self._answer(500, b'{"error": {"message": "injected fault", "type": "server_error"}}')
                        return
                    if proxy.slow_marker and proxy.slow_marker in prompt:
                        time.sleep(proxy.slow_s)
                    self._forward(body)
                finally:
                    with proxy._lock:
                        proxy._inflight -= 1

            def _forward(self, body: bytes) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                req = urllib.request.Request(proxy.upstream + self.path, data=body or None, headers=headers,
                                             method=self.command)
                try:
                    with urllib.request.urlopen(req, timeout=300) as r:
                        self._answer(r.status, r.read())
                except urllib.error.HTTPError as exc:
                    self._answer(exc.code, exc.read())
                except OSError:  # the server gone (the module's end): a gateway error, quietly
                    self._answer(502, b'{"error": {"message": "upstream gone"}}')

            def _answer(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (its timeout): nothing to answer
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self, **faults: object) -> None:
        self.fail_marker, self.slow_marker, self.slow_s, self.delay_s = None, None, 0.0, 0.0
        for k, v in faults.items():
            setattr(self, k, v)
        self.prompts, self.peak = [], 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
