"""I/O: Kinesis, DynamoDB, Iceberg. Flink-side builders and boto3/pyiceberg clients."""
