import json

from udfs.dead_letter import dead_letter, original_bytes


def test_keeps_original_bytes_even_when_not_utf8():
    raw = b"\xff\xfe binary \x00"
    dl = dead_letter(raw, "malformed-json", "not UTF-8", "us-east-1", 5, "s/shard/1")
    doc = json.loads(dl)
    assert doc["reason"] == "malformed-json" and doc["raw_encoding"] == "base64" and doc["at"] == 5
    assert original_bytes(dl) == raw


def test_text_is_kept_readable():
    dl = dead_letter(b'{"x":', "malformed-json", "eof", "eu-west-1", 1)
    assert json.loads(dl)["raw"] == '{"x":' and original_bytes(dl) == b'{"x":'
