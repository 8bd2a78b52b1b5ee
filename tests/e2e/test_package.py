"""The Managed Flink zip, unpacked, runs the job on the minicluster from its own layout."""
from __future__ import annotations

import time
import zipfile

import pytest

from sandbox.jobrunner import start_job, wait_until
from cli.package import RUN_OPTIONS, build_zip
from cli.produce import events, put
from sandbox.local_cluster import Sandbox

pytestmark = pytest.mark.e2e


def test_unpacked_zip_runs_the_job(tmp_path):
    zip_path = build_zip(tmp_path / "app.zip")
    app = tmp_path / "app"
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(app)
    assert (app / RUN_OPTIONS["python"]).exists() and (app / RUN_OPTIONS["jarfile"]).exists()
    assert (app / "site_packages" / "boto3").is_dir()
    # Only what the job loads (pom.xml's shade filters): 218 MB before them.
    jar_mb = (app / RUN_OPTIONS["jarfile"]).stat().st_size / 1e6
    assert jar_mb <= 80, f"uber-jar is {jar_mb:.1f} MB"
    print(f"jar {jar_mb:.1f} MB, zip {zip_path.stat().st_size / 1e6:.1f} MB")

    sb = Sandbox(tmp_path, 4591, ["us-east-1"]).up()
    try:
        # Run exactly as Managed Flink would: the unpacked main.py, the unpacked jar, cwd = app.
        t0 = time.monotonic()
        job = start_job("us-east-1", sb.properties, tmp_path / "logs", cwd=app,
                        module_or_script=[str(app / "main.py")], extra_args=["--jar", str(app / RUN_OPTIONS["jarfile"])])
        sb.jobs.append(job)
        evs = list(events("us-east-1", 100, 10, seed=303))
        put(sb.settings, "us-east-1", [(e.key, e.to_json().encode()) for e in evs])
        ids = {e.event_id for e in evs}
        wait_until(lambda: ids <= set(sb.lake_ids("us-east-1")), 240, 2.0, [job], "packaged job commits")
        print(f"start to all 100 events committed: {time.monotonic() - t0:.1f}s")
        log = job.log.read_text(errors="replace")
        assert f"code from {app}" in log, log[-2000:]
    finally:
        sb.down()
