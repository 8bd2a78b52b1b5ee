"""The replicator's stats file is read by tests while the replicator rewrites it every 2 s."""
import threading
from pathlib import Path

from sandbox import services
from sandbox.replicate import write_stats


def _hammer(tmp_path: Path, write) -> list[Exception]:
    doc = {"dynamodb": {"t": {"conflict_keys": [f"key-{i}" * 20 for i in range(2000)]}}}
    write(tmp_path / "replicator.json", doc)
    errors: list[Exception] = []
    done = threading.Event()

    def writer():
        for _ in range(1000):
            if errors:  # the control needs one partial read, not more
                break
            write(tmp_path / "replicator.json", doc)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    while not done.is_set():
        try:
            assert services.replicator_stats(tmp_path) == doc
        except Exception as e:  # noqa: BLE001 - any failure to read a whole document counts
            errors.append(e)
    t.join()
    return errors


def test_a_reader_sees_whole_documents_only(tmp_path):
    assert _hammer(tmp_path, write_stats) == []


def test_control_a_truncating_write_is_seen_half_written(tmp_path):
    import json

    def truncating(path: Path, doc: dict) -> None:
        path.write_text(json.dumps(doc))
    # The check can fail: the plain write (what CI once tripped over) shows partial documents.
    assert _hammer(tmp_path, truncating) != []
