"""CloudFormation templates read as data: YAML with the short intrinsic tags, and a template bound
to one account, region and parameter set, evaluated as far as homeflow's templates need (Ref,
Fn::Sub, Fn::GetAtt, Fn::Join, Fn::Select, Fn::Split, Fn::If with its conditions, AWS::NoValue).
Used by `homeflow deploy` (connectors/managed_flink.py: the application the region template
declares), the least-privilege check (sandbox/iam_policy.py) and the sandbox's stand-in for global
tables (sandbox/stacks.py)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

PARTITION = "aws"
NO_VALUE = object()


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) read as their long form."""


def _tag(loader, suffix, node):
    fn = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {fn: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_CfnLoader)


class Template:
    """One template with its parameters bound (defaults, then `params`) in one account and region."""

    def __init__(self, doc: dict, region: str, account: str, params: dict[str, object]):
        self.doc, self.resources = doc, doc.get("Resources", {})
        self.params: dict[str, object] = {}
        for name, p in doc.get("Parameters", {}).items():
            if "Default" in p:
                d = p["Default"]
                self.params[name] = d.split(",") if p.get("Type") == "CommaDelimitedList" else str(d)
        self.params.update(params)
        self.params.update({"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": PARTITION,
                            "AWS::URLSuffix": "amazonaws.com"})
        self.region, self.account = region, account

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.doc["Conditions"][name]))

    def resolve(self, node):
        if isinstance(node, list):
            return [v for v in (self.resolve(n) for n in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                return self._ref(arg)
            if fn == "Fn::Sub":
                return self._sub(arg)
            if fn == "Fn::GetAtt":
                return self._getatt(*(arg if isinstance(arg, list) else arg.split(".", 1)))
            if fn == "Fn::Join":
                sep, items = arg
                return sep.join(str(i) for i in self.resolve(items))
            if fn == "Fn::Select":
                i, items = self.resolve(arg)
                return items[int(i)]
            if fn == "Fn::Split":
                sep, s = self.resolve(arg)
                return s.split(sep)
            if fn == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no)
            if fn == "Fn::Equals":
                a, b = self.resolve(arg)
                return a == b
            if fn == "Fn::Not":
                return not self.resolve(arg)[0]
            if fn == "Fn::And":
                return all(self.resolve(arg))
            if fn == "Fn::Or":
                return any(self.resolve(arg))
            if fn == "Condition":
                return self.condition(arg)
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}

    def _ref(self, name: str):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            return self.params[name]
        r = self.resources[name]
        props = self.resolve(r.get("Properties", {}))
        return props.get({"AWS::Kinesis::Stream": "Name", "AWS::S3::Bucket": "BucketName",
                          "AWS::Logs::LogGroup": "LogGroupName", "AWS::DynamoDB::GlobalTable": "TableName"}
                         .get(r["Type"], ""), name)

    def _getatt(self, name: str, attr: str):
        t = self.resources[name]["Type"]
        if attr != "Arn":
            raise ValueError(f"Fn::GetAtt {name}.{attr} is not modelled")
        phys = self._ref(name)
        return {
            "AWS::Kinesis::Stream": f"arn:{PARTITION}:kinesis:{self.region}:{self.account}:stream/{phys}",
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{phys}",
            "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{self.region}:{self.account}:log-group:{phys}:*",
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{self.account}:role/{phys}",
        }[t]

    def _sub(self, arg):
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def one(m):
            name = m.group(1)
            if name in extra:
                return str(extra[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self._getatt(*name.split(".", 1)))
            v = self._ref(name)
            return ",".join(v) if isinstance(v, list) else str(v)
        return re.sub(r"\$\{([^}!]+)\}", one, text)
