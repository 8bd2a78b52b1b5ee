"""The pieces of the least-privilege proof, without a sandbox: requests described as IAM sees them
(sandbox.api_calls), the role policy read from infra/region.yaml (sandbox.iam_policy), and the
check, with controls that fail it in each direction."""
from __future__ import annotations

import base64
import json
from pathlib import Path

from connectors.cfn_template import Template, load_template
from sandbox.api_calls import Call, describe
from sandbox.iam_policy import Grant, check, role_grants

ROOT = Path(__file__).resolve().parents[2]
ACCT = "123456789012"


def _env(method="POST", path="/", region="eu-west-1", service="kinesis", key="job-eu", target=None, query="",
         host="127.0.0.1:4566", **extra):
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "HTTP_HOST": host,
           "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={key}/20261130/{region}/{service}/aws4_request, "
                                 "SignedHeaders=host, Signature=abc"}
    if target:
        env["HTTP_X_AMZ_TARGET"] = target
    env.update(extra)
    return env


def test_kinesis_calls_name_the_stream_even_by_iterator():
    c, = describe(_env(target="Kinesis_20131202.PutRecords"), json.dumps({"StreamName": "homeflow-forward"}).encode())
    assert c == Call("job-eu", "eu-west-1", "kinesis:PutRecords",
                     f"arn:aws:kinesis:eu-west-1:{ACCT}:stream/homeflow-forward")
    it = base64.b64encode(b"homeflow-ingest:shardId-000000000001:49600").decode()
    c, = describe(_env(target="Kinesis_20131202.GetRecords"), json.dumps({"ShardIterator": it}).encode())
    assert c.resource == f"arn:aws:kinesis:eu-west-1:{ACCT}:stream/homeflow-ingest"
    arn = f"arn:aws:kinesis:us-east-1:{ACCT}:stream/x"
    c, = describe(_env(target="Kinesis_20131202.ListShards"), json.dumps({"StreamARN": arn}).encode())
    assert c.resource == arn


def test_dynamodb_calls_name_table_index_and_each_transaction_item():
    c, = describe(_env(service="dynamodb", target="DynamoDB_20120810.Query"),
                  json.dumps({"TableName": "t", "IndexName": "i"}).encode())
    assert (c.action, c.resource) == ("dynamodb:Query", f"arn:aws:dynamodb:eu-west-1:{ACCT}:table/t/index/i")
    calls = describe(_env(service="dynamodb", target="DynamoDB_20120810.TransactWriteItems"), json.dumps(
        {"TransactItems": [{"Put": {"TableName": "a"}}, {"ConditionCheck": {"TableName": "b"}}]}).encode())
    assert [(c.action, c.resource.rsplit("/", 1)[1]) for c in calls] == \
        [("dynamodb:PutItem", "a"), ("dynamodb:ConditionCheckItem", "b")]


def test_managed_flink_calls_name_the_application():
    c, = describe(_env(service="kinesisanalytics", target="KinesisAnalytics_20180523.StopApplication"),
                  json.dumps({"ApplicationName": "homeflow", "Force": True}).encode())
    assert (c.action, c.resource) == ("kinesisanalytics:StopApplication",
                                      f"arn:aws:kinesisanalytics:eu-west-1:{ACCT}:application/homeflow")
    c, = describe(_env(service="kinesisanalytics", target="KinesisAnalytics_20180523.ListApplications"), b"{}")
    assert c.resource is None


def test_s3_requests_map_to_iam_actions():
    def one(method, path, query="", **kw):
        return [(c.action, c.resource) for c in describe(_env(method, path, service="s3", query=query, **kw), None)]
    assert one("HEAD", "/b/k/x.parquet") == [("s3:GetObject", "arn:aws:s3:::b/k/x.parquet")]
    assert one("GET", "/b/k", "versionId=3") == [("s3:GetObjectVersion", "arn:aws:s3:::b/k")]
    assert one("PUT", "/b/k", "partNumber=1&uploadId=u") == [("s3:PutObject", "arn:aws:s3:::b/k")]
    assert one("DELETE", "/b/k", "uploadId=u") == [("s3:AbortMultipartUpload", "arn:aws:s3:::b/k")]
    assert one("GET", "/b", "list-type=2&prefix=x") == [("s3:ListBucket", "arn:aws:s3:::b")]
    assert one("GET", "/b", "location") == [("s3:GetBucketLocation", "arn:aws:s3:::b")]
    assert one("GET", "/k", host="b.s3.localhost:4566") == [("s3:GetObject", "arn:aws:s3:::b/k")]  # virtual host
    assert one("PUT", "/b/new", HTTP_X_AMZ_COPY_SOURCE="/src/old") == \
        [("s3:PutObject", "arn:aws:s3:::b/new"), ("s3:GetObject", "arn:aws:s3:::src/old")]
    body = b"<Delete><Object><Key>a/1</Key></Object><Object><Key>a/2</Key></Object></Delete>"
    got = describe(_env("POST", "/b", service="s3", query="delete"), body)
    assert [(c.action, c.resource) for c in got] == [("s3:DeleteObject", "arn:aws:s3:::b/a/1"),
                                                     ("s3:DeleteObject", "arn:aws:s3:::b/a/2")]


def test_unsigned_requests_are_not_calls():
    env = _env()
    del env["HTTP_AUTHORIZATION"]
    assert describe(env, b"{}") == []


def _region_grants(region="us-east-1", remote=("eu-west-1",)):
    t = Template(load_template(ROOT / "infra" / "region.yaml"), region, ACCT,
                 {"CodeBucket": "code", "CodeKey": "app.zip", "LakeBucketPrefix": "lake",
                  "RemoteRegions": list(remote), "Regions": [region, *remote]})
    return role_grants(t)


def test_policy_resolves_for_each_region_and_names_no_foreign_stream_by_wildcard():
    g = _region_grants()
    forward = {x.resource for x in g if x.sid == "ForwardToOtherRegions"}
    assert forward == {f"arn:aws:kinesis:eu-west-1:{ACCT}:stream/homeflow-forward"}
    two = {x.resource for x in _region_grants("us-east-1", ("eu-west-1", "ap-south-1")) if x.sid == "ForwardToOtherRegions"}
    assert two == {f"arn:aws:kinesis:{r}:{ACCT}:stream/homeflow-forward" for r in ("eu-west-1", "ap-south-1")}


def test_check_fails_both_ways():
    g = _region_grants()
    ingest = f"arn:aws:kinesis:us-east-1:{ACCT}:stream/homeflow-ingest"
    calls = [Call("k", "us-east-1", "kinesis:GetRecords", ingest)]
    v = check(calls, g)
    assert not v.denied and v.used_by[next(x for x in g if x.action == "kinesis:GetRecords" and x.resource == ingest)]
    assert v.unused, "one call cannot use every grant"
    # a missing permission: the call is denied
    assert check(calls, [x for x in g if x.action != "kinesis:GetRecords"]).denied == calls
    # a call to another account's stream, or an unknown resource, is denied too
    assert check([Call("k", "us-east-1", "kinesis:GetRecords", ingest.replace(ACCT, "999999999999"))], g).denied
    assert check([Call("k", "us-east-1", "kinesis:GetRecords", None)], g).denied
    # action match is case-insensitive, resource match is not
    assert not check([Call("k", "us-east-1", "Kinesis:getrecords", ingest)], g).denied
    assert check([Call("k", "us-east-1", "kinesis:GetRecords", ingest.upper())], g).denied


def test_wildcards_where_a_name_is_known_are_too_wide():
    wide = [Grant("A", "kinesis:*", "arn:aws:kinesis:us-east-1:1:stream/s"),
            Grant("B", "kinesis:PutRecords", "arn:aws:kinesis:*:1:stream/s"),
            Grant("C", "s3:GetObject", "arn:aws:s3:::lake-*/*.json"),
            Grant("D", "dynamodb:GetItem", "*"),
            Grant("E", "dynamodb:Query", "arn:aws:dynamodb:us-east-1:1:table/t*")]
    ok = [Grant("F", "s3:GetObject", "arn:aws:s3:::lake-us-east-1/*"),
          Grant("G", "dynamodb:Query", "arn:aws:dynamodb:us-east-1:1:table/t/index/*"),
          Grant("H", "cloudwatch:PutMetricData", "*")]
    flagged = check([], wide + ok, service_side={}).too_wide
    assert sorted(f.split(":", 1)[0] for f in flagged) == ["A", "B", "C", "D", "E"], flagged
