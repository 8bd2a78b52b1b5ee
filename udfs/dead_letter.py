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


def archive_row(dead_letter_json: str) -> tuple:
    """The dead-letter archive's row (connectors/lake_schema.py DEAD_LETTER_SCHEMA, `at` in epoch
    ms) of one dead letter: its fields, and the event_id and key of the original record when it
    is a JSON object that has them as strings (a malformed record has none; a routing conflict's
    envelope has both). Never raises on a bad original: that is why it is here."""
    doc = json.loads(dead_letter_json)
    event_id = key = None
    try:
        original = json.loads(original_bytes(dead_letter_json))
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond the parser
        original = None
    if isinstance(original, dict):
        event_id = original.get("event_id") if isinstance(original.get("event_id"), str) else None
        key = original.get("key") if isinstance(original.get("key"), str) else None
    return (int(doc["at"]), doc["reason"], doc.get("detail") or None, doc["region"], doc.get("source") or None,
            event_id, key, doc["raw"], doc["raw_encoding"])
