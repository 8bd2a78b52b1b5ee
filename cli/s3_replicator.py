"""An S3 cross-region replication stand-in for the sandbox: new objects in a source bucket are
copied to a destination bucket `lag_s` after they were first seen (like CRR, per object, in no
particular order between objects)."""
from __future__ import annotations

import time

from cli.poller import Poller
from conf.settings import Settings
from connectors import aws


class S3Replicator(Poller):
    def __init__(self, settings: Settings, pairs: list[tuple[str, str]], lag_s: float = 3.0, poll_s: float = 0.2):
        self.s3 = aws.client("s3", "us-east-1", settings.aws)
        self.pairs, self.lag_s, self.poll_s = pairs, lag_s, poll_s
        self.first_seen: dict[tuple[str, str], float] = {}
        self.copied: set[tuple[str, str, str]] = set()

    def _keys(self, bucket: str) -> list[str]:
        keys, kw = [], {"Bucket": bucket}
        while True:
            page = self.s3.list_objects_v2(**kw)
            keys += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            kw["ContinuationToken"] = page["NextContinuationToken"]

    def step(self) -> None:
        now = time.time()
        for src, dst in self.pairs:
            for key in self._keys(src):
                seen = self.first_seen.setdefault((src, key), now)
                if (src, dst, key) not in self.copied and now - seen >= self.lag_s:
                    self.s3.copy_object(Bucket=dst, Key=key, CopySource={"Bucket": src, "Key": key})
                    self.copied.add((src, dst, key))
