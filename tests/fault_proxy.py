"""A fault-injecting HTTP proxy for the sandbox (loopback only).

Everything is passed through to the upstream emulator, except Kinesis PutRecords calls to one
stream: of those, some whole requests are throttled (HTTP 400 ProvisionedThroughputExceeded) and
some records fail inside an otherwise successful request (partial failure), exactly as Kinesis
reports them. Each record is failed at most `max_failures_per_record` times, so retries succeed.
"""
from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients (a killed job) dropping connections is expected here


class FaultProxy:
    def __init__(self, port: int, upstream: str, stream: str, fail_ratio: float = 0.3,
                 throttle_ratio: float = 0.1, seed: int = 7, max_failures_per_record: int = 2):
        self.port, self.upstream, self.stream = port, upstream.rstrip("/"), stream
        self.fail_ratio, self.throttle_ratio = fail_ratio, throttle_ratio
        self.rng = random.Random(seed)
        self.max_failures = max_failures_per_record
        self.failures: dict[tuple[str, str], int] = {}
        self.stats = {"put_records_calls": 0, "throttled_calls": 0, "failed_records": 0, "passed_records": 0}
        self.lock = threading.Lock()
        self.server = _QuietServer(("127.0.0.1", port), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # -- plumbing

    def _forward(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(self.upstream + path, data=body if body else None, method=method,
                                     headers={k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def _put_records(self, headers: dict, doc: dict) -> tuple[int, dict, bytes]:
        with self.lock:
            self.stats["put_records_calls"] += 1
            if self.rng.random() < self.throttle_ratio:
                self.stats["throttled_calls"] += 1
                body = json.dumps({"__type": "ProvisionedThroughputExceededException",
                                   "message": "injected throttle"}).encode()
                return 400, {"Content-Type": "application/x-amz-json-1.1",
                             "x-amzn-ErrorType": "ProvisionedThroughputExceededException"}, body
            fail = []
            for rec in doc["Records"]:
                ident = (rec["PartitionKey"], rec["Data"])
                f = self.failures.get(ident, 0) < self.max_failures and self.rng.random() < self.fail_ratio
                if f:
                    self.failures[ident] = self.failures.get(ident, 0) + 1
                fail.append(f)
            self.stats["failed_records"] += sum(fail)
            self.stats["passed_records"] += len(fail) - sum(fail)
        keep = [r for r, f in zip(doc["Records"], fail) if not f]
        results = []
        if keep:
            status, h, body = self._forward("POST", "/", headers, json.dumps({**doc, "Records": keep}).encode())
            if status != 200:
                return status, h, body
            results = json.loads(body)["Records"]
        out, it = [], iter(results)
        for f in fail:
            out.append({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "injected"}
                       if f else next(it))
        body = json.dumps({"FailedRecordCount": sum(1 for r in out if "ErrorCode" in r), "Records": out}).encode()
        return 200, {"Content-Type": "application/x-amz-json-1.1"}, body

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                headers = dict(self.headers)
                target = self.headers.get("X-Amz-Target", "")
                status, h, out = None, None, None
                if target.endswith(".PutRecords"):
                    doc = json.loads(body)
                    name = doc.get("StreamName") or (doc.get("StreamARN") or "").rsplit("/", 1)[-1]
                    if name == proxy.stream:
                        status, h, out = proxy._put_records(headers, doc)
                if status is None:
                    status, h, out = proxy._forward(self.command, self.path, headers, body)
                self.send_response(status)
                for k, v in h.items():
                    if k.lower() not in HOP_HEADERS:
                        self.send_header(k, v)
                length = h.get("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        return Handler
