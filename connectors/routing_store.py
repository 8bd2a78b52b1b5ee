"""The routing table in DynamoDB: one item holding the whole JSON document and its epoch.

One item means one strongly consistent GetItem returns one whole version; writes are conditional
on the epoch rising, so two editors cannot silently overwrite each other.
"""
from __future__ import annotations

from botocore.exceptions import ClientError

from conf.settings import Settings
from connectors import aws
from udfs.routing_table import RoutingTable

ITEM_KEY = {"name": {"S": "routing"}}


class StaleEpochError(RuntimeError):
    pass


class RoutingStore:
    def __init__(self, settings: Settings, region: str):
        self.table = settings.job.routing_table
        self.ddb = aws.client("dynamodb", region, settings.aws)

    def ensure_table(self) -> None:
        try:
            self.ddb.describe_table(TableName=self.table)
        except self.ddb.exceptions.ResourceNotFoundException:
            self.ddb.create_table(
                TableName=self.table,
                AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )

    def read_raw(self) -> str | None:
        item = self.ddb.get_item(TableName=self.table, Key=ITEM_KEY, ConsistentRead=True).get("Item")
        return None if item is None else item.get("doc", {}).get("S")

    def read(self, known_regions: frozenset[str]) -> RoutingTable | None:
        text = self.read_raw()
        return None if text is None else RoutingTable.from_json(text, known_regions)

    def write(self, table: RoutingTable) -> None:
        """Store `table` if its epoch is higher than the stored one."""
        self.write_raw(table.to_json(), table.epoch)

    def write_raw(self, doc: str, epoch: int) -> None:
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item={**ITEM_KEY, "doc": {"S": doc}, "epoch": {"N": str(epoch)}},
                ConditionExpression="attribute_not_exists(#n) OR epoch < :e",
                ExpressionAttributeNames={"#n": "name"},
                ExpressionAttributeValues={":e": {"N": str(epoch)}},
            )
        except ClientError as e:
            if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise StaleEpochError(f"stored routing table already has epoch >= {epoch}") from None
            raise
