"""Python access to the lake: the per-home-region Iceberg tables behind the DynamoDB catalog.

PyIceberg's DynamoDB catalog uses the same item layout as Java's DynamoDbCatalog (iceberg-aws), so
tables the Flink job commits are read here unchanged.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.dynamodb import DynamoDbCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.table import Table

from conf.settings import Settings
from connectors import aws
from connectors.lake_schema import SCHEMA, SORT_ORDER, SPEC, TABLE_PROPERTIES


class _DynamoDbCatalog(DynamoDbCatalog):
    """PyIceberg's DynamoDB catalog with our boto3 client (it builds its own, without endpoint)."""

    def __init__(self, name: str, dynamodb: Any, table_name: str, **properties: str):
        Catalog.__init__(self, name, **properties)
        self.dynamodb = dynamodb
        self.dynamodb_table_name = table_name
        self._ensure_catalog_table_exists_or_create()


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


def identifier(settings: Settings, home_region: str) -> tuple[str, str]:
    return (settings.lake.namespace, settings.lake.table_name(home_region))


def ensure_table(settings: Settings, home_region: str) -> Table:
    cat = catalog(settings, home_region)
    try:
        cat.create_namespace(settings.lake.namespace)
    except NamespaceAlreadyExistsError:
        pass
    ident = identifier(settings, home_region)
    try:
        return cat.create_table(
            ident, schema=SCHEMA, partition_spec=SPEC, sort_order=SORT_ORDER,
            location=f"{settings.lake.warehouse(home_region)}/{ident[0]}/{ident[1]}",
            properties=TABLE_PROPERTIES,
        )
    except TableAlreadyExistsError:
        return cat.load_table(ident)


def load_table(settings: Settings, home_region: str, via_region: str | None = None) -> Table | None:
    try:
        return catalog(settings, home_region, via_region).load_table(identifier(settings, home_region))
    except NoSuchTableError:
        return None


def read_rows(settings: Settings, home_region: str, columns: tuple[str, ...] = ("*",),
              snapshot_id: int | None = None) -> pa.Table:
    table = load_table(settings, home_region)
    if table is None or table.current_snapshot() is None:
        return SCHEMA.as_arrow().empty_table() if columns == ("*",) else pa.table({c: [] for c in columns})
    return table.scan(selected_fields=columns, snapshot_id=snapshot_id).to_arrow()
