"""homeflow ingest job: one deployment per region.

    python -m jobs.ingest --region us-east-1 --properties conf/local/application_properties.json

On Managed Service for Apache Flink no flags are given: properties come from
/etc/flink/application_properties.json and the connector jar from the application's run options.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # lets `python jobs/ingest.py` work as Managed Flink runs it
    sys.path.insert(0, str(ROOT))

from conf.settings import ConfigError, MANAGED_FLINK_PROPERTIES, groups_from_properties, settings_from_groups  # noqa: E402
from jobs import checkpoints  # noqa: E402

DEFAULT_JAR = ROOT / "target" / "homeflow-connectors.jar"
PACKAGED_JAR = ROOT / "lib" / "homeflow-connectors.jar"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m jobs.ingest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--region", help="this deployment's region (overrides homeflow.job/region)")
    p.add_argument("--properties", help=f"properties file (default: {MANAGED_FLINK_PROPERTIES})")
    p.add_argument("--jar", help="connector uber-jar (default: lib/ in a package, else target/)")
    p.add_argument("--checkpoint-dir",
                   help="local runs: where checkpoints are kept (default: homeflow.job/checkpoint.dir, else "
                        ".sandbox/checkpoints); the region's own directory below it is used")
    p.add_argument("--restore", default="latest",
                   help="local runs: 'latest' (default: the newest retained checkpoint or savepoint of this "
                        "region, as Managed Flink restores from the latest snapshot), 'none' (start without "
                        "state), or a checkpoint/savepoint path")
    p.add_argument("--allow-non-restored-state", action="store_true",
                   help="local runs: restore even if the checkpoint/savepoint holds state of operators this job "
                        "no longer has (an upgrade that removed them, or compaction and expiry, or read "
                        "publishing, turned off); Managed Flink: AllowNonRestoredState")
    p.add_argument("--parallelism", type=int, help="override homeflow.job/parallelism (savepoint upgrades)")
    p.add_argument("--rest-port", type=int, help="local runs: serve Flink's REST API (metrics) on this port")
    p.add_argument("--validate-only", action="store_true", help="check the properties and exit")
    return p.parse_args(argv)


def _export_python_path() -> None:
    """THREAD mode embeds CPython in the JVM (pemja); that interpreter starts from the base
    installation, so it must be told where this virtualenv's packages and our modules are."""
    import site
    paths = [str(ROOT), *site.getsitepackages()]
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = Path(args.properties) if args.properties else MANAGED_FLINK_PROPERTIES
    try:
        groups = groups_from_properties(json.loads(path.read_text()), str(path))
        if args.region:
            groups.setdefault("homeflow.job", {})["region"] = args.region
        if args.parallelism:
            groups.setdefault("homeflow.job", {})["parallelism"] = str(args.parallelism)
        settings = settings_from_groups(groups)
    except FileNotFoundError:
        print(f"error: {path}: properties file not found", file=sys.stderr)
        return 2
    except (ConfigError, ValueError) as e:
        print(f"error: bad configuration: {e}", file=sys.stderr)
        return 2
    print(f"homeflow: code from {ROOT}, region {settings.job.region}", flush=True)
    if args.validate_only:
        print(f"ok: {path} is valid for region {settings.job.region}")
        return 0

    from connectors.aws import export_credentials_for_jvm
    export_credentials_for_jvm(settings.aws)  # before the JVM starts
    _export_python_path()

    from pyflink.common import Configuration
    from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
    from jobs.graph import build

    conf = Configuration()
    jar = Path(args.jar) if args.jar else (PACKAGED_JAR if PACKAGED_JAR.exists() else DEFAULT_JAR)
    on_managed_flink = not args.properties and MANAGED_FLINK_PROPERTIES.exists()
    if not on_managed_flink:
        if not jar.exists():
            print(f"error: connector jar {jar} not found; build it with `mvn -q package`", file=sys.stderr)
            return 2
        conf.set_string("pipeline.jars", jar.resolve().as_uri())
        # The Python workers must use this interpreter (the virtualenv), not `python` on PATH.
        conf.set_string("python.executable", sys.executable)
        conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.execution-mode", settings.job.python_execution_mode)
    restore = None
    if not on_managed_flink:
        # Durable checkpoints by default, and a restart resumes from the newest one (or a newer
        # savepoint): a plain re-run must not replay the streams into the lake with empty state.
        ckpt = checkpoints.region_dir(args.checkpoint_dir or settings.job.checkpoint_dir, settings.job.region)
        conf.set_string("state.checkpoints.dir", ckpt.as_uri())
        conf.set_string("state.savepoints.dir", (ckpt / "savepoints").as_uri())
        conf.set_string("state.checkpoints.num-retained", "2")
        conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
        restore = checkpoints.resolve_restore(args.restore, ckpt)
        if restore:
            conf.set_string("execution.savepoint.path", restore)
            if args.allow_non_restored_state:
                conf.set_string("execution.savepoint.ignore-unclaimed-state", "true")
        print(f"homeflow: checkpoints in {ckpt}; " + (f"restoring from {restore}" if restore else
                                                     "starting without state"), flush=True)
    if args.rest_port:
        conf.set_string("rest.port", str(args.rest_port))
        conf.set_string("rest.address", "127.0.0.1")
        conf.set_string("rest.bind-address", "127.0.0.1")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(settings.job.parallelism)
    env.set_max_parallelism(settings.job.max_parallelism)
    env.enable_checkpointing(settings.job.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    build(env, settings, groups)
    try:
        env.execute(f"homeflow-{settings.job.region}")
    except Exception as e:  # py4j's error: Flink's message is in its text
        if "allowNonRestoredState" not in str(e):
            raise
        if _operator_id("router") in str(e):
            print(f"error: {restore} holds the per-key router state of a release before the batched router "
                  f"(operator uid 'router'), which this release keeps per key group and cannot read. Restore "
                  f"with --allow-non-restored-state once `homeflow routes status` shows no key held ("
                  f"records held in a hand-off would be dropped): its dedup is what the start's seed reads "
                  f"from the lake, its order marks start again.", file=sys.stderr)
            return 2
        print(f"error: {restore} holds state of operators this job does not have (an upgrade removed them, "
              f"or compaction and expiry, or read publishing, are off now). Rerun with "
              f"--allow-non-restored-state to drop "
              f"that state, or restore with the configuration it was taken with.", file=sys.stderr)
        return 2
    return 0


def _operator_id(uid: str) -> str:
    """The operator id Flink derives from a uid (StreamGraphHasherV2: murmur3_128 of the uid), as
    its restore errors name operators."""
    from pyflink.java_gateway import get_gateway
    jvm = get_gateway().jvm
    digest = jvm.org.apache.flink.shaded.guava31.com.google.common.hash.Hashing.murmur3_128(0).newHasher() \
        .putString(uid, jvm.java.nio.charset.StandardCharsets.UTF_8).hash().asBytes()
    return jvm.org.apache.flink.runtime.jobgraph.OperatorID(digest).toHexString()


if __name__ == "__main__":
    sys.exit(main())
