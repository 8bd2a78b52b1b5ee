"""Every AWS API call the sandbox serves, as IAM sees it: who (the access key), where (the region
of the signature), what (the IAM action, e.g. `kinesis:PutRecords`) and on what (the resource ARN).

The recorder is a WSGI layer in the emulator's process (sandbox.moto_gate), outermost, so calls a
region gate refuses are recorded as well: a permission is needed whether or not the region
answers. `GET /homeflow/calls` returns the set with a count per call; `DELETE` empties it.

Actions are IAM actions, not API operations: S3's HeadObject is authorised as s3:GetObject, a
multipart upload's parts as s3:PutObject, a DynamoDB TransactWriteItems as each item's own action.
A resource the request does not name (Kinesis GetRecords with only an iterator) is recovered
where the emulator's token carries it; otherwise it is recorded as None (unknown).
"""
from __future__ import annotations

import base64
import io
import json
import re
import threading
from dataclasses import asdict, dataclass
from urllib.parse import parse_qs, unquote
from xml.etree import ElementTree

CALLS_PATH = "/homeflow/calls"
DEFAULT_ACCOUNT = "123456789012"  # moto's account for keys it does not know
_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/")
_QUERY_SCOPE = re.compile(r"X-Amz-Credential=([^&/]+?)(?:%2F|/)\d{8}(?:%2F|/)([a-z0-9-]+)(?:%2F|/)([a-z0-9-]+)")
_IAM_PREFIX = {"monitoring": "cloudwatch"}  # signing name -> IAM prefix, where they differ


@dataclass(frozen=True)
class Call:
    key: str  # access key id: tells the job's calls from an operator's
    region: str
    action: str  # IAM action, service:Name
    resource: str | None  # ARN, or None when the request does not say


def _scope(environ) -> tuple[str, str, str] | None:
    m = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", "")) or _QUERY_SCOPE.search(environ.get("QUERY_STRING", ""))
    return (unquote(m.group(1)), m.group(2), m.group(3)) if m else None


def needs_body(environ) -> bool:
    """Whether describing this request reads its body (JSON and query protocols, S3 multi-delete);
    an S3 object's bytes are never read."""
    if environ.get("HTTP_X_AMZ_TARGET"):
        return True
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return True
    return environ.get("REQUEST_METHOD") == "POST" and "delete" in parse_qs(environ.get("QUERY_STRING", ""),
                                                                             keep_blank_values=True)


def describe(environ, body: bytes | None, account: str = DEFAULT_ACCOUNT) -> list[Call]:
    scope = _scope(environ)
    if scope is None:
        return []
    key, region, service = scope
    if service == "s3":
        pairs = _s3(environ, body)
    elif environ.get("HTTP_X_AMZ_TARGET"):
        op = environ["HTTP_X_AMZ_TARGET"].rsplit(".", 1)[-1]
        doc = _json(body)
        if service == "kinesis":
            pairs = [(op, _kinesis_resource(doc, region, account))]
        elif service == "dynamodb":
            pairs = _dynamodb(op, doc, region, account)
        elif service == "kinesisanalytics" and doc.get("ApplicationName"):
            pairs = [(op, f"arn:aws:kinesisanalytics:{region}:{account}:application/{doc['ApplicationName']}")]
        else:
            pairs = [(op, None)]
    else:
        form = parse_qs((body or b"").decode("utf-8", "replace"))
        pairs = [(form.get("Action", ["?"])[0], None)]
    prefix = _IAM_PREFIX.get(service, service)
    return [Call(key, region, f"{prefix}:{op}", res) for op, res in pairs]


def _json(body: bytes | None) -> dict:
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _kinesis_resource(doc: dict, region: str, account: str) -> str | None:
    if doc.get("StreamARN"):
        return doc["StreamARN"]
    name = doc.get("StreamName") or _stream_of_iterator(doc.get("ShardIterator"))
    return f"arn:aws:kinesis:{region}:{account}:stream/{name}" if name else None


def _stream_of_iterator(it: str | None) -> str | None:
    """moto's shard iterator is base64 of "<stream>:<shard>:<sequence>" (AWS's names the stream too)."""
    if not it:
        return None
    try:
        return base64.b64decode(it + "=" * (-len(it) % 4)).decode().split(":", 1)[0] or None
    except (ValueError, UnicodeDecodeError):
        return None


_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem",
             "Get": "GetItem"}


def _dynamodb(op: str, doc: dict, region: str, account: str) -> list[tuple[str, str | None]]:
    def arn(table: str, index: str | None = None) -> str:
        return f"arn:aws:dynamodb:{region}:{account}:table/{table}" + (f"/index/{index}" if index else "")
    if op in ("BatchGetItem", "BatchWriteItem"):
        return [(op, arn(t)) for t in sorted(doc.get("RequestItems") or {})] or [(op, None)]
    if op in ("TransactWriteItems", "TransactGetItems"):
        out = []
        for item in doc.get("TransactItems") or []:
            for kind, body in item.items():
                out.append((_TRANSACT.get(kind, kind), arn(body.get("TableName", "?"))))
        return out or [(op, None)]
    if doc.get("TableName"):
        return [(op, arn(doc["TableName"], doc.get("IndexName")))]
    return [(op, "*" if op.startswith("List") else None)]


def _s3(environ, body: bytes | None) -> list[tuple[str, str | None]]:
    method = environ.get("REQUEST_METHOD", "GET")
    q = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    bucket, key = _bucket_and_key(environ)
    if not bucket:
        return [("ListAllMyBuckets", "*")]
    b = f"arn:aws:s3:::{bucket}"
    if not key:
        sub = next((s for s in ("location", "versioning", "replication", "policy", "uploads", "versions",
                                "encryption", "publicAccessBlock", "tagging", "lifecycle", "notification")
                    if s in q), None)
        if method == "POST" and "delete" in q:
            return [("DeleteObject", f"{b}/{k}") for k in _multi_delete_keys(body)] or [("DeleteObject", None)]
        if method in ("GET", "HEAD"):
            return [({"location": "GetBucketLocation", "versioning": "GetBucketVersioning",
                      "replication": "GetReplicationConfiguration", "policy": "GetBucketPolicy",
                      "uploads": "ListBucketMultipartUploads", "versions": "ListBucketVersions",
                      "encryption": "GetEncryptionConfiguration", "publicAccessBlock": "GetBucketPublicAccessBlock",
                      "tagging": "GetBucketTagging", "lifecycle": "GetLifecycleConfiguration",
                      "notification": "GetBucketNotification"}.get(sub, "ListBucket"), b)]
        if method == "PUT":
            return [({"versioning": "PutBucketVersioning", "replication": "PutReplicationConfiguration",
                      "policy": "PutBucketPolicy", "encryption": "PutEncryptionConfiguration",
                      "publicAccessBlock": "PutBucketPublicAccessBlock", "tagging": "PutBucketTagging",
                      "lifecycle": "PutLifecycleConfiguration",
                      "notification": "PutBucketNotification"}.get(sub, "CreateBucket"), b)]
        if method == "DELETE":
            return [("DeleteBucket", b)]
        return [(method, b)]
    o = f"{b}/{key}"
    versioned = "versionId" in q
    if method in ("GET", "HEAD"):
        if "tagging" in q:
            return [("GetObjectVersionTagging" if versioned else "GetObjectTagging", o)]
        if "uploadId" in q:
            return [("ListMultipartUploadParts", o)]
        return [("GetObjectVersion" if versioned else "GetObject", o)]
    if method == "PUT":
        if "tagging" in q:
            return [("PutObjectTagging", o)]
        src = environ.get("HTTP_X_AMZ_COPY_SOURCE")
        if src:
            return [("PutObject", o), ("GetObject", "arn:aws:s3:::" + unquote(src.split("?", 1)[0]).lstrip("/"))]
        return [("PutObject", o)]  # PutObject and UploadPart
    if method == "POST":
        return [("PutObject", o)]  # CreateMultipartUpload, CompleteMultipartUpload
    if method == "DELETE":
        if "uploadId" in q:
            return [("AbortMultipartUpload", o)]
        return [("DeleteObjectVersion" if versioned else "DeleteObject", o)]
    return [(method, o)]


def _bucket_and_key(environ) -> tuple[str, str]:
    host = environ.get("HTTP_HOST", "").split(":", 1)[0]
    path = unquote(environ.get("PATH_INFO", "/"))
    first = host.split(".", 1)[0]
    if host and not re.fullmatch(r"[\d.]+|localhost|\[?::1\]?", host) and first not in ("s3", "localhost"):
        return first, path.lstrip("/")  # virtual-hosted style: <bucket>.<endpoint>
    parts = path.lstrip("/").split("/", 1)
    return parts[0], (parts[1] if len(parts) > 1 else "")


def _multi_delete_keys(body: bytes | None) -> list[str]:
    try:
        root = ElementTree.fromstring(body or b"")
    except ElementTree.ParseError:
        return []
    return [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Key"]


def _sort_key(c: Call) -> tuple:
    return c.key, c.region, c.action, c.resource or ""


class CallRecorder:
    """WSGI middleware: describes each request, counts it, hands it on unchanged."""

    def __init__(self, app, account: str = DEFAULT_ACCOUNT):
        self.app, self.account = app, account
        self.calls: dict[Call, int] = {}
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == CALLS_PATH:
            return self._admin(environ, start_response)
        body = None
        if needs_body(environ) and environ.get("CONTENT_LENGTH"):
            body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
            environ["wsgi.input"] = io.BytesIO(body)
        try:
            described = describe(environ, body, self.account)
        except Exception as e:  # never fail a request because it could not be described
            described = [Call("?", "?", f"unparsed:{type(e).__name__}", environ.get("PATH_INFO"))]
        with self.lock:
            for c in described:
                self.calls[c] = self.calls.get(c, 0) + 1
        return self.app(environ, start_response)

    def _admin(self, environ, start_response):
        with self.lock:
            if environ.get("REQUEST_METHOD") == "DELETE":
                self.calls.clear()
            doc = [dict(asdict(c), count=n) for c, n in sorted(self.calls.items(), key=lambda kv: _sort_key(kv[0]))]
        body = json.dumps(doc).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def fetch(endpoint: str, reset: bool = False) -> dict[Call, int]:
    """The calls a running sandbox has recorded (and, with reset, forget them)."""
    import urllib.request
    req = urllib.request.Request(endpoint.rstrip("/") + CALLS_PATH, method="DELETE" if reset else "GET")
    with urllib.request.urlopen(req, timeout=30) as r:
        return {Call(d["key"], d["region"], d["action"], d["resource"]): d["count"] for d in json.loads(r.read())}
