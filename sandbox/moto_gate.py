"""The sandbox's AWS endpoint: moto's server (every service, every region on one port) behind a
*region gate* that can make whole regions unreachable, as in a region loss drill.

    python -m sandbox.moto_gate -H 127.0.0.1 -p 4566

A request's region comes from its SigV4 credential scope (`Credential=<key>/<date>/<region>/...`).
`POST /homeflow/gate {"down": ["us-east-1"]}` takes regions down (every request signed for them
then gets HTTP 503 ServiceUnavailable, which SDKs retry); `{"down": []}` brings them back;
`GET /homeflow/gate` shows the state. The gate is a WSGI layer in moto's own process: no proxy hop.
With `--kinesis-upstream URL`, Kinesis requests are passed on to kinesis-mock instead of moto
(sandbox/kinesis_mock.py): the one proxy hop, for the resharding test.
"""
from __future__ import annotations

import argparse
import http.client
import json
import re
import signal
import sys
import threading
from urllib.parse import urlparse

from sandbox.kinesis_mock import MOTO_HEADER, STATUS_PATH

CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")
GATE_PATH = "/homeflow/gate"


def request_region(environ) -> str | None:
    m = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if m is None:
        m = re.search(r"X-Amz-Credential=[^&]*?%2F\d{8}%2F([a-z0-9-]+)%2F", environ.get("QUERY_STRING", ""))
    return m.group(1) if m else None


class RegionGate:
    def __init__(self, app):
        self.app = app
        self.down: set[str] = set()
        self.refused = 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == GATE_PATH:
            return self._admin(environ, start_response)
        region = request_region(environ)
        if region is not None and region in self.down:
            with self.lock:
                self.refused += 1
            body = json.dumps({"__type": "ServiceUnavailableException",
                               "message": f"region {region} is unreachable (homeflow sandbox region gate)"}).encode()
            start_response("503 Service Unavailable", [
                ("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", "ServiceUnavailableException"),
                ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)

    def _admin(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "POST":
            n = int(environ.get("CONTENT_LENGTH") or 0)
            doc = json.loads(environ["wsgi.input"].read(n) or b"{}")
            with self.lock:
                self.down = set(doc.get("down", []))
        body = json.dumps({"down": sorted(self.down), "refused": self.refused}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


class KinesisUpstream:
    """Kinesis API requests (`X-Amz-Target: Kinesis_20131202.*`) go to another Kinesis emulator
    (kinesis-mock, sandbox/kinesis_mock.py); everything else, and Kinesis requests carrying
    `X-Homeflow-Backend: moto`, to moto. `GET /homeflow/kinesis` names the backend."""

    HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}

    MOTO_KEY = "HTTP_" + MOTO_HEADER.upper().replace("-", "_")

    def __init__(self, app, upstream: str):
        self.app = app
        u = urlparse(upstream)
        self.host, self.port = u.hostname, u.port
        self.local = threading.local()  # one keep-alive connection per server thread

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == STATUS_PATH:
            body = json.dumps({"backend": "kinesis-mock", "upstream": f"http://{self.host}:{self.port}"}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if (not environ.get("HTTP_X_AMZ_TARGET", "").startswith("Kinesis_20131202.")
                or environ.get(self.MOTO_KEY) == "moto"):
            return self.app(environ, start_response)
        n = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(n) if n else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        headers["Content-Type"] = environ.get("CONTENT_TYPE", "application/x-amz-json-1.1")
        headers["Content-Length"] = str(len(body))
        status, reason, out_headers, data = self._forward(environ.get("PATH_INFO") or "/", body, headers)
        out = [(k, v) for k, v in out_headers if k.lower() not in self.HOP_BY_HOP]
        start_response(f"{status} {reason}", out + [("Content-Length", str(len(data)))])
        return [data]

    def _forward(self, path, body, headers):
        for attempt in (1, 2):  # a kept-alive connection the upstream closed: reconnect once
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                conn.request("POST", path, body, headers)
                r = conn.getresponse()
                return r.status, r.reason, r.getheaders(), r.read()
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise


def main(argv: list[str] | None = None) -> None:
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    from sandbox import moto_fidelity
    from sandbox.api_calls import CallRecorder

    p = argparse.ArgumentParser(prog="python -m sandbox.moto_gate")
    p.add_argument("-H", "--host", default="127.0.0.1")
    p.add_argument("-p", "--port", type=int, default=4566)
    p.add_argument("--managed-flink-dir", help="serve the kinesisanalyticsv2 stand-in (sandbox/managed_flink) "
                   "with its state, code and Flink clusters here")
    p.add_argument("--managed-flink-port", type=int,
                   help="REST port of the first region's Flink cluster (+1 per region; default: port + 100)")
    p.add_argument("--kinesis-upstream", help="send Kinesis API requests to this Kinesis emulator "
                   "(kinesis-mock, for resharding) instead of moto's")
    args = p.parse_args(argv)
    import os
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    moto_fidelity.apply()
    app = moto_fidelity.serialized(DomainDispatcherApplication(create_backend_app))
    msf = None
    if args.managed_flink_dir:
        from pathlib import Path
        from sandbox.managed_flink.service import ManagedFlinkService
        app = msf = ManagedFlinkService(app, Path(args.managed_flink_dir), f"http://{args.host}:{args.port}",
                                        args.managed_flink_port or args.port + 100)
    if args.kinesis_upstream:
        app = KinesisUpstream(app, args.kinesis_upstream)
    gate = RegionGate(app)
    if msf is not None:  # a lost region's service recovers nothing until the region is back
        msf.reachable = lambda region: region not in gate.down
    run_simple(args.host, args.port, CallRecorder(gate), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
