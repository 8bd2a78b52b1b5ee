"""Where a local regional job keeps its checkpoints and savepoints, and which one it restores.

Managed Flink keeps snapshots itself and restores the latest by default; locally the same default
holds: `<checkpoint dir>/<region>/<job id>/chk-N` (retained on cancel and on a crash) and
`<checkpoint dir>/<region>/savepoints/savepoint-*`, and a start resumes from the newest of them.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".sandbox" / "checkpoints"


def _path(uri_or_path: str | None) -> Path:
    if not uri_or_path:
        return DEFAULT_DIR
    u = urlparse(uri_or_path)
    if u.scheme not in ("", "file"):
        raise ValueError(f"local checkpoints must be on a local file system, got {uri_or_path}")
    return Path(u.path if u.scheme else uri_or_path).resolve()


def region_dir(base: str | None, region: str) -> Path:
    d = _path(base) / region
    d.mkdir(parents=True, exist_ok=True)
    return d


def retained(region_dir: Path) -> list[Path]:
    """Completed checkpoints and savepoints (a directory with _metadata), oldest first."""
    found = [p.parent for p in region_dir.glob("*/chk-*/_metadata")]
    found += [p.parent for p in (region_dir / "savepoints").glob("*/_metadata")]
    return sorted(found, key=lambda p: (p / "_metadata").stat().st_mtime)


def latest(region_dir: Path) -> Path | None:
    found = retained(region_dir)
    return found[-1] if found else None


def resolve_restore(restore: str | None, region_dir: Path) -> str | None:
    if restore in (None, "", "none"):
        return None
    if restore == "latest":
        p = latest(region_dir)
        return p.as_uri() if p else None
    return restore
