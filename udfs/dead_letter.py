"""Dead-letter records: the original bytes, the reason, the region and the time."""
from __future__ import annotations

import base64
import json


def dead_letter(raw: bytes | str, reason: str, detail: str, region: str, at_ms: int,
                source: str = "") -> str:
    if isinstance(raw, bytes):
        try:
            text, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    else:
        text, encoding = raw, "utf-8"
    return json.dumps(
        {"reason": reason, "detail": detail, "region": region, "at": at_ms,
         "source": source, "raw": text, "raw_encoding": encoding},
        separators=(",", ":"),
    )


def original_bytes(dead_letter_json: str) -> bytes:
    doc = json.loads(dead_letter_json)
    if doc["raw_encoding"] == "base64":
        return base64.b64decode(doc["raw"])
    return doc["raw"].encode("utf-8")
