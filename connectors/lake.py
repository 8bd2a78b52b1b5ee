"""Python access to the lake: the per-home-region Iceberg tables behind the DynamoDB catalog.

PyIceberg's DynamoDB catalog uses the same item layout as Java's DynamoDbCatalog (iceberg-aws), so
tables the Flink job commits are read here unchanged.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.dynamodb import DynamoDbCatalog
from pyiceberg.exceptions import (CommitFailedException, NamespaceAlreadyExistsError, NoSuchTableError,
                                 TableAlreadyExistsError)
from pyiceberg.table.snapshots import MetadataLogEntry
from pyiceberg.table import CommitTableRequest, CommitTableResponse, Table, update_table_metadata

from conf.settings import Settings
from connectors import aws
from connectors.lake_schema import (DEAD_LETTER_SCHEMA, DEAD_LETTER_SPEC, SCHEMA, SORT_ORDER, SPEC,
                                    TABLE_PROPERTIES)


class _DynamoDbCatalog(DynamoDbCatalog):
    """PyIceberg's DynamoDB catalog with our boto3 client (it builds its own, without endpoint),
    and the commit PyIceberg lacks (its `_commit_table` raises NotImplementedError).

    The commit is the one Java's DynamoDbTableOperations makes, on the same item layout: write a
    new metadata file, then UpdateItem the pointer (`p.metadata_location`,
    `p.previous_metadata_location`, a fresh version `v`, `updated_at`) on the condition that `v`
    is still the version the commit was based on. A concurrent commit (Flink's, or another
    Python one) makes the condition fail: CommitFailedException, nothing lost, retry on a
    refreshed table (`commit_with_retry`).
    """

    def __init__(self, name: str, dynamodb: Any, table_name: str, **properties: str):
        Catalog.__init__(self, name, **properties)
        self.dynamodb = dynamodb
        self.dynamodb_table_name = table_name
        self._ensure_catalog_table_exists_or_create()

    def _commit_table(self, table_request: CommitTableRequest) -> CommitTableResponse:
        ident = self.identifier_to_tuple_without_catalog(
            tuple(table_request.identifier.namespace.root + [table_request.identifier.name]))
        ns, name = ident[:-1], ident[-1]
        item = self._get_iceberg_table_item(database_name=ns[0], table_name=name)
        expected_version = item["v"]["S"]
        current = self._convert_dynamo_table_item_to_iceberg_table(item)
        base = current.metadata
        for requirement in table_request.requirements:
            requirement.validate(base)
        updated = update_table_metadata(base, table_request.updates)
        if updated == base:
            return CommitTableResponse(metadata=base, metadata_location=current.metadata_location)
        # As Java does: the replaced metadata file joins the log (read pointers and orphan removal
        # rely on it), which keeps the newest `write.metadata.previous-versions-max` entries.
        keep = int(base.properties.get("write.metadata.previous-versions-max", "100"))
        log = [*base.metadata_log, MetadataLogEntry(metadata_file=current.metadata_location,
                                                     timestamp_ms=base.last_updated_ms)][-keep:]
        updated = updated.model_copy(update={"metadata_log": log,
                                             "last_updated_ms": max(int(time.time() * 1000), base.last_updated_ms)})
        version = self._parse_metadata_version(current.metadata_location) + 1
        location = self._get_metadata_location(base.location, version)
        self._write_metadata(updated, current.io, location)
        try:
            self.dynamodb.update_item(
                TableName=self.dynamodb_table_name,
                Key={"identifier": {"S": f"{ns[0]}.{name}"}, "namespace": {"S": ns[0]}},
                UpdateExpression="SET #loc = :loc, #prev = :prev, v = :new_v, updated_at = :now",
                ConditionExpression="v = :v",
                ExpressionAttributeNames={"#loc": "p.metadata_location", "#prev": "p.previous_metadata_location"},
                ExpressionAttributeValues={
                    ":loc": {"S": location}, ":prev": {"S": current.metadata_location},
                    ":new_v": {"S": str(uuid.uuid4())}, ":now": {"N": str(int(time.time() * 1000))},
                    ":v": {"S": expected_version}})
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            raise CommitFailedException(
                f"{ns[0]}.{name}: pointer moved since version {expected_version} (concurrent commit)") from None
        return CommitTableResponse(metadata=updated, metadata_location=location)


def commit_with_retry(settings: Settings, home_region: str, change, attempts: int = 10) -> int:
    """Apply `change(transaction)` on the latest table and commit; on a concurrent commit, reload
    and apply again. Returns how many conflicts it met."""
    for i in range(attempts):
        table = catalog(settings, home_region).load_table(identifier(settings, home_region))
        try:
            with table.transaction() as tx:
                change(tx)
            return i
        except CommitFailedException:
            time.sleep(0.05 * (i + 1))
    raise CommitFailedException(f"gave up after {attempts} concurrent-commit conflicts")


def s3_properties(settings: Settings, region: str) -> dict[str, str]:
    props = {"s3.region": region}
    if settings.aws.endpoint:
        props["s3.endpoint"] = settings.aws.endpoint
    if settings.aws.access_key_id:
        props["s3.access-key-id"] = settings.aws.access_key_id
        props["s3.secret-access-key"] = settings.aws.secret_access_key or ""
    return props


def catalog(settings: Settings, home_region: str, via_region: str | None = None) -> Catalog:
    """The catalog holding `home_region`'s table. Its pointer item is written only in that region;
    `via_region` reads another region's replica of the catalog table (global-table replication)."""
    return _DynamoDbCatalog(
        f"homeflow-{home_region}",
        aws.client("dynamodb", via_region or home_region, settings.aws),
        settings.lake.catalog_table,
        warehouse=settings.lake.warehouse(home_region),
        **s3_properties(settings, home_region),
    )


_catalog = catalog


def identifier(settings: Settings, home_region: str) -> tuple[str, str]:
    return (settings.lake.namespace, settings.lake.table_name(home_region))


def _create(settings: Settings, region: str, ident: tuple[str, str], **layout) -> Table | None:
    """Create `ident` in `region`'s catalog and bucket (the namespace too); None if it exists."""
    cat = catalog(settings, region)
    try:
        cat.create_namespace(settings.lake.namespace)
    except NamespaceAlreadyExistsError:
        pass
    try:
        return cat.create_table(ident, location=f"{settings.lake.warehouse(region)}/{ident[0]}/{ident[1]}",
                                properties=TABLE_PROPERTIES, **layout)
    except TableAlreadyExistsError:
        return None


def ensure_table(settings: Settings, home_region: str) -> Table:
    ident = identifier(settings, home_region)
    return (_create(settings, home_region, ident, schema=SCHEMA, partition_spec=SPEC, sort_order=SORT_ORDER)
            or evolve(catalog(settings, home_region).load_table(ident)))


def dead_letter_identifier(settings: Settings, region: str) -> tuple[str, str]:
    return (settings.lake.namespace, settings.lake.dead_letter_table_name(region))


def ensure_dead_letter_table(settings: Settings, region: str) -> Table:
    """The region's dead-letter archive (connectors/lake_schema.py DEAD_LETTER_SCHEMA), in the same
    catalog and bucket as its home table."""
    ident = dead_letter_identifier(settings, region)
    return (_create(settings, region, ident, schema=DEAD_LETTER_SCHEMA, partition_spec=DEAD_LETTER_SPEC)
            or catalog(settings, region).load_table(ident))


def load_dead_letter_table(settings: Settings, region: str) -> Table | None:
    try:
        return catalog(settings, region).load_table(dead_letter_identifier(settings, region))
    except NoSuchTableError:
        return None


def missing_columns(table: Table) -> list[str]:
    have = {f.name for f in table.schema().fields}
    return [f.name for f in SCHEMA.fields if f.name not in have]


def evolve(table: Table) -> Table:
    """Add the columns a newer homeflow writes (all optional) to a table created by an older one."""
    missing = [f for f in SCHEMA.fields if f.name in missing_columns(table)]
    if not missing:
        return table
    with table.update_schema() as upd:
        for f in missing:
            upd.add_column(f.name, f.field_type, f.doc)
    return table


def load_table(settings: Settings, home_region: str, via_region: str | None = None,
               catalog: Catalog | None = None) -> Table | None:
    try:
        return (catalog or _catalog(settings, home_region, via_region)).load_table(identifier(settings, home_region))
    except NoSuchTableError:
        return None


def pointer_location(settings: Settings, home_region: str, dynamodb) -> str | None:
    """The metadata file the table's catalog pointer names now (one GetItem, no metadata read)."""
    ns, name = identifier(settings, home_region)
    item = dynamodb.get_item(TableName=settings.lake.catalog_table, ConsistentRead=True,
                             Key={"identifier": {"S": f"{ns}.{name}"}, "namespace": {"S": ns}}).get("Item")
    return item["p.metadata_location"]["S"] if item and "p.metadata_location" in item else None


def read_rows(settings: Settings, home_region: str, columns: tuple[str, ...] = ("*",),
              snapshot_id: int | None = None) -> pa.Table:
    table = load_table(settings, home_region)
    if table is None or table.current_snapshot() is None:
        return SCHEMA.as_arrow().empty_table() if columns == ("*",) else pa.table({c: [] for c in columns})
    return table.scan(selected_fields=columns, snapshot_id=snapshot_id).to_arrow()


def summary(snap) -> dict[str, str]:
    """A snapshot's summary properties (empty when it has none)."""
    return snap.summary.additional_properties if snap.summary else {}


class LiveFiles:
    """The live data files (path, size) of each manifest, read once: manifests are immutable, so
    snapshots sharing a manifest, or a probe repeated as the table grows, read only new ones."""

    def __init__(self):
        self._by_manifest: dict[str, list[tuple[str, int]]] = {}

    def of_manifest(self, manifest, io) -> list[tuple[str, int]]:
        files = self._by_manifest.get(manifest.manifest_path)
        if files is None:
            files = self._by_manifest[manifest.manifest_path] = [
                (e.data_file.file_path, e.data_file.file_size_in_bytes)
                for e in manifest.fetch_manifest_entry(io, discard_deleted=True)]
        return files

    def keep_only(self, manifest_paths: set[str]) -> None:
        for gone in set(self._by_manifest) - manifest_paths:
            del self._by_manifest[gone]

    def reachable(self, snap, io) -> set[str]:
        """Every file one snapshot reaches: its manifest list, manifests and live data files."""
        out = {snap.manifest_list}
        for m in snap.manifests(io):
            out.add(m.manifest_path)
            out.update(path for path, _ in self.of_manifest(m, io))
        return out

    def reachable_all(self, snaps, io) -> set[str]:
        out: set[str] = set()
        for snap in snaps:
            out |= self.reachable(snap, io)
        return out


class CommittedIds:
    """The event_ids of each home table's current snapshot, for polling while waiting for commits.

    A whole scan (`read_rows`) re-reads every manifest and data file on each poll; on a table of a
    few hundred one-second commits that took seconds per poll here. Manifests and data files are
    immutable, so this reads each once and a poll reads only what was committed since the last.
    The result is the same multiset of ids as a whole scan; a table with delete files (homeflow
    writes none) falls back to one. Assertions keep using `read_rows`, the plain scan.
    """

    def __init__(self, settings: Settings, workers: int = 8):
        self.settings, self.workers = settings, workers
        self._live: dict[str, LiveFiles] = {}
        self._ids: dict[str, list[str]] = {}  # data file path -> its event_ids

    def __call__(self, home_region: str) -> list[str]:
        from concurrent.futures import ThreadPoolExecutor

        from pyiceberg.manifest import ManifestContent
        table = load_table(self.settings, home_region)
        snap = table.current_snapshot() if table is not None else None
        if snap is None:
            return []
        manifests = snap.manifests(table.io)
        if any(m.content != ManifestContent.DATA for m in manifests):
            return read_rows(self.settings, home_region, ("event_id",))["event_id"].to_pylist()
        live = self._live.setdefault(home_region, LiveFiles())
        paths = [path for m in manifests for path, _ in live.of_manifest(m, table.io)]
        live.keep_only({m.manifest_path for m in manifests})
        new = [p for p in paths if p not in self._ids]
        if new:
            with ThreadPoolExecutor(min(self.workers, len(new))) as pool:
                read = pool.map(lambda p: read_data_file(table.io, p, ("event_id",))["event_id"].to_pylist(), new)
                for path, ids in zip(new, read):
                    self._ids[path] = ids
        return [i for p in paths for i in self._ids[p]]


def read_data_file(io, path: str, columns: tuple[str, ...]) -> pa.Table:
    """Some columns of one data file, read directly (no scan planning)."""
    import pyarrow.parquet as pq
    with io.new_input(path).open() as f:
        return pq.read_table(f, columns=list(columns))
