"""An independent reader: DuckDB's own Iceberg implementation, given the metadata file that the
DynamoDB pointer names. Extensions come from pip packages and are loaded from disk; DuckDB's
automatic download of extensions is turned off (nothing may need the internet at run time)."""
from __future__ import annotations

import importlib
from pathlib import Path
from urllib.parse import urlparse

from conf.settings import Settings
from connectors import aws, lake


def _extension(name: str) -> str:
    mod = importlib.import_module(f"duckdb_extension_{name}")
    found = sorted(Path(mod.__file__).parent.glob(f"extensions/*/{name}.duckdb_extension"))
    if not found:
        raise RuntimeError(f"duckdb-extension-{name} ships no {name}.duckdb_extension")
    return str(found[-1])


def connect(settings: Settings, region: str):
    import duckdb
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false",
                                 "autoload_known_extensions": "false"})
    for name in ("avro", "httpfs", "iceberg"):  # iceberg needs avro (manifests) and httpfs (S3)
        con.execute(f"LOAD '{_extension(name)}'")
    opts = [f"REGION '{region}'"]
    if settings.aws.access_key_id:
        opts += [f"KEY_ID '{settings.aws.access_key_id}'", f"SECRET '{settings.aws.secret_access_key}'"]
    if settings.aws.endpoint:
        u = urlparse(settings.aws.endpoint)
        opts += [f"ENDPOINT '{u.netloc}'", "URL_STYLE 'path'", f"USE_SSL {'true' if u.scheme == 'https' else 'false'}"]
    con.execute(f"CREATE SECRET homeflow (TYPE s3, {', '.join(opts)})")
    return con


def metadata_location(settings: Settings, home_region: str) -> str | None:
    """Read the pointer item directly, as any reader without an Iceberg catalog would."""
    ns, name = lake.identifier(settings, home_region)
    item = aws.client("dynamodb", home_region, settings.aws).get_item(
        TableName=settings.lake.catalog_table, Key={"identifier": {"S": f"{ns}.{name}"}, "namespace": {"S": ns}},
        ConsistentRead=True).get("Item")
    return None if item is None else item.get("p.metadata_location", {}).get("S")


def count_rows(settings: Settings, home_region: str) -> tuple[int, int]:
    """(rows, distinct event_ids) in `home_region`'s table at its current pointer."""
    loc = metadata_location(settings, home_region)
    if loc is None:
        return (0, 0)
    con = connect(settings, home_region)
    return tuple(con.execute(f"SELECT count(*), count(DISTINCT event_id) FROM iceberg_scan('{loc}')").fetchone())
