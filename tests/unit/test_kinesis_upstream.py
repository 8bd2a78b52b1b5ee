"""The region gate's Kinesis pass-through (sandbox.moto_gate.KinesisUpstream): Kinesis API requests
go to the upstream emulator byte for byte, with its status and error body; everything else, and
Kinesis requests marked for moto (stream mirroring), stays with the inner app."""
from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sandbox.moto_gate import KinesisUpstream


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as kinesis-mock
    seen: list[tuple[str, dict, bytes]] = []
    drop_after_response = False  # close the connection without saying so (an idle timeout)

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Upstream.seen.append((self.path, dict(self.headers), body))
        target = self.headers.get("X-Amz-Target", "")
        status, out = (400, {"__type": "ResourceNotFoundException"}) if target.endswith("DescribeStream") \
            else (200, {"upstream": True, "echo": body.decode()})
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = _Upstream.drop_after_response

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Upstream.seen.clear()
    _Upstream.drop_after_response = False
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def _inner(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"moto"]


def _call(app, target: str | None, body: bytes = b"{}", path: str = "/", **headers):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": "application/x-amz-json-1.1", "wsgi.input": io.BytesIO(body),
               "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=k/20260101/eu-west-1/kinesis/aws4_request"}
    if target:
        environ["HTTP_X_AMZ_TARGET"] = target
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    status = {}
    out = b"".join(app(environ, lambda s, h: status.update(s=s, h=dict(h))))
    return status["s"], status["h"], out


def test_kinesis_requests_go_upstream_and_the_rest_stays(upstream):
    app = KinesisUpstream(_inner, upstream)
    body = json.dumps({"StreamName": "homeflow-ingest", "Records": [{"Data": "eA==", "PartitionKey": "ключ"}]}).encode()
    status, headers, out = _call(app, "Kinesis_20131202.PutRecords", body)
    assert status.startswith("200") and json.loads(out) == {"upstream": True, "echo": body.decode()}
    assert int(headers["Content-Length"]) == len(out)
    path, sent_headers, sent = _Upstream.seen[-1]
    assert sent == body and sent_headers["X-Amz-Target"] == "Kinesis_20131202.PutRecords"
    assert "eu-west-1" in sent_headers["Authorization"]  # the region (and key) travel with the request

    status, _, out = _call(app, "Kinesis_20131202.DescribeStream")  # an error keeps its status and body
    assert status.startswith("400") and json.loads(out)["__type"] == "ResourceNotFoundException"

    n = len(_Upstream.seen)
    assert _call(app, "DynamoDB_20120810.GetItem")[2] == b"moto"
    assert _call(app, None, path="/bucket/key")[2] == b"moto"
    assert _call(app, "Kinesis_20131202.ListStreams", X_HOMEFLOW_BACKEND="moto")[2] == b"moto"
    assert len(_Upstream.seen) == n, "only Kinesis requests may reach the upstream"

    status, _, out = _call(app, None, path="/homeflow/kinesis")
    assert json.loads(out) == {"backend": "kinesis-mock", "upstream": upstream}


def test_a_dropped_keep_alive_connection_is_reopened(upstream):
    _Upstream.drop_after_response = True
    app = KinesisUpstream(_inner, upstream)
    for _ in range(3):
        assert _call(app, "Kinesis_20131202.ListShards")[0].startswith("200")
    assert len(_Upstream.seen) == 3
