"""An S3 cross-region replication stand-in for the sandbox: new objects in a source bucket are
copied to a destination bucket `lag_s` after they were first seen (like CRR, per object, in no
particular order between objects)."""
from __future__ import annotations

import time

from sandbox.poller import Poller
from conf.settings import Settings
from connectors import aws


class S3Replicator(Poller):
    def __init__(self, settings: Settings, pairs: list[tuple[str, str]], lag_s: float = 3.0, poll_s: float = 0.2,
                 bucket_regions: dict[str, str] | None = None):
        # Requests are signed for the bucket's region, so a region that is down (the sandbox's
        # region gate) stalls replication from and to it, as an outage stalls CRR.
        regions = bucket_regions or {}
        self.clients = {b: aws.client("s3", regions.get(b, "us-east-1"), settings.aws)
                        for pair in pairs for b in pair}
        self.pairs, self.lag_s, self.poll_s = pairs, lag_s, poll_s
        self.first_seen: dict[tuple[str, str], float] = {}
        self.copied: set[tuple[str, str, str]] = set()
        self.replicated = 0
        self.errors = 0

    def _keys(self, bucket: str) -> list[str]:
        keys, kw = [], {"Bucket": bucket}
        while True:
            page = self.clients[bucket].list_objects_v2(**kw)
            keys += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            kw["ContinuationToken"] = page["NextContinuationToken"]

    def step(self) -> None:
        now = time.time()
        listed: dict[str, list[str] | None] = {}
        for src, dst in self.pairs:
            if src not in listed:  # one listing per source bucket and step, shared by its replicas
                try:
                    listed[src] = self._keys(src)
                except Exception:  # noqa: BLE001 - its region is down: replication resumes when it is back
                    self.errors += 1
                    listed[src] = None
            keys = listed[src]
            if keys is None:
                continue
            try:
                for key in keys:
                    seen = self.first_seen.setdefault((src, key), now)
                    if (src, dst, key) not in self.copied and now - seen >= self.lag_s:
                        self.clients[dst].copy_object(Bucket=dst, Key=key, CopySource={"Bucket": src, "Key": key})
                        self.copied.add((src, dst, key))
                        self.replicated += 1
            except Exception:  # noqa: BLE001 - the destination's region is down
                self.errors += 1
