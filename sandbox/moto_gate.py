"""The sandbox's AWS endpoint: moto's server (every service, every region on one port) behind a
*region gate* that can make whole regions unreachable, as in a region loss drill.

    python -m sandbox.moto_gate -H 127.0.0.1 -p 4566

A request's region comes from its SigV4 credential scope (`Credential=<key>/<date>/<region>/...`).
`POST /homeflow/gate {"down": ["us-east-1"]}` takes regions down (every request signed for them
then gets HTTP 503 ServiceUnavailable, which SDKs retry); `{"down": []}` brings them back;
`GET /homeflow/gate` shows the state. The gate is a WSGI layer in moto's own process: no proxy hop.
"""
from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading

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
    args = p.parse_args(argv)
    import os
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    moto_fidelity.apply()
    app = moto_fidelity.serialized(DomainDispatcherApplication(create_backend_app))
    if args.managed_flink_dir:
        from pathlib import Path
        from sandbox.managed_flink.service import ManagedFlinkService
        app = ManagedFlinkService(app, Path(args.managed_flink_dir), f"http://{args.host}:{args.port}",
                                  args.managed_flink_port or args.port + 100)
    run_simple(args.host, args.port, CallRecorder(RegionGate(app)), threaded=True,
               request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
