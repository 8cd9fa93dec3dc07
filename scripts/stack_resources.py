#!/usr/bin/env python3
"""Create the stack's DynamoDB tables and SQS queues on a local AWS endpoint, from template.yaml.

The local stack and the integration tests need the same table and queues as the deployed stack.
Rather than keeping a second description of them, this script reads template.yaml itself (with
cfn-lint's decoder, so !Ref/!GetAtt/!Sub/... tags parse) and creates every `AWS::DynamoDB::Table`
and `AWS::SQS::Queue` with the properties the template declares, against an endpoint such as a
moto server. Run it with the project venv's Python (it needs boto3 and cfn-lint):

    .venv/bin/python scripts/stack_resources.py create --endpoint http://127.0.0.1:5055 \
        --template template.yaml --prefix t1- [--param MaxAttempts=3 ...] [--region us-east-1]
    .venv/bin/python scripts/stack_resources.py describe --template template.yaml [--param ...]

Resolution follows CloudFormation: `Ref` to a parameter gives its default (or the `--param`
override, checked against the parameter's constraints) as a string; pseudo parameters are
AWS::Region, AWS::AccountId (123456789012), AWS::Partition (aws), AWS::URLSuffix,
AWS::StackName (the prefix without trailing `-`/`_`, or `local`), AWS::NoValue. Conditions are
evaluated, and a resource whose Condition is false is skipped; the template's Rules (parameter
assertions) are checked first. Fn::If, Fn::FindInMap, Fn::Sub,
Fn::Join, Fn::Select, Fn::Split, Fn::GetAtt (Arn, QueueName, QueueUrl, StreamArn) and
Fn::ToJsonString are supported. A table or queue property that depends on anything else (a
function, a role, ...) is an error, not a guess.

Physical names are PREFIX + logical id (`.fifo` appended for FIFO queues); a `TableName` or
`QueueName` in the template is ignored so parallel runs with different prefixes never collide.
Creating is idempotent: an existing table with the same key schema, or a queue with the same
attributes, is reused; a conflicting one is an error.

`create` prints ONE JSON object on stdout:
    {"<TableLogicalId>": "<table name>",
     "<QueueLogicalId>Url": ..., "<QueueLogicalId>Arn": ..., "<QueueLogicalId>Name": ...,
     "Parameters": {"<name>": "<resolved value>", ...}}
NoEcho parameters with a non-empty value are shown as "****".

`describe` prints what the template declares, resolved the same way, for drift tests:
    {"Parameters": {...},
     "Tables": {"<LogicalId>": {"AttributeDefinitions": [...], "KeySchema": [...],
                                "BillingMode": ..., "GlobalSecondaryIndexes": [...],
                                "LocalSecondaryIndexes": [...], "TimeToLive": {...} | null,
                                "PointInTimeRecoveryEnabled": bool, "SSEEnabled": bool,
                                "StreamViewType": str | null, "Condition": str | null}},
     "Queues": {"<LogicalId>": {"VisibilityTimeout": int, "MessageRetentionPeriod": int, ...,
                                "RedrivePolicy": {"deadLetterQueue": "<LogicalId>",
                                                  "maxReceiveCount": int} | absent,
                                "Condition": str | null}},
     "Skipped": ["<LogicalId of a table/queue whose Condition is false>", ...]}
Only what the template declares is listed (no SQS defaults filled in); queue values are typed
(ints, bools). Both commands list tables and queues in template order.

Errors go to stderr with exit status 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
ACCOUNT_ID = "123456789012"  # moto's default account
TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
SUPPORTED = (TABLE, QUEUE)

QUEUE_INT_ATTRIBUTES = (
    "DelaySeconds",
    "KmsDataKeyReusePeriodSeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
)
QUEUE_BOOL_ATTRIBUTES = ("ContentBasedDeduplication", "FifoQueue", "SqsManagedSseEnabled")
QUEUE_STR_ATTRIBUTES = ("DeduplicationScope", "FifoThroughputLimit", "KmsMasterKeyId")
QUEUE_JSON_ATTRIBUTES = ("RedrivePolicy", "RedriveAllowPolicy")
QUEUE_IGNORED = ("QueueName", "Tags")
TABLE_HANDLED = (
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "ProvisionedThroughput",
    "OnDemandThroughput",
    "StreamSpecification",
    "SSESpecification",
    "TableClass",
    "DeletionProtectionEnabled",
    "TimeToLiveSpecification",
    "PointInTimeRecoverySpecification",
    "TableName",
    "Tags",
)


class StackError(Exception):
    """A problem with the template, the parameters or the endpoint, reported without a traceback."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


class Placeholder:
    """A resource attribute that `describe` cannot know (no resource is created)."""

    def __init__(self, logical_id: str, attribute: str):
        self.logical_id = logical_id
        self.attribute = attribute

    def __str__(self) -> str:
        return f"<{self.logical_id}.{self.attribute}>"


# --------------------------------------------------------------------------- template


def load_template(path: Path) -> dict[str, Any]:
    from cfnlint.decode import decode

    if not path.is_file():
        raise StackError(f"template not found: {path}")
    template, matches = decode(str(path))
    if matches or template is None:
        details = "; ".join(str(m) for m in matches) or "unknown error"
        raise StackError(f"cannot parse {path}: {details}")
    return _plain(template)


def _plain(node: Any) -> Any:
    """cfn-lint's dict_node/list_node/str_node as plain Python values."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _param_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_param_str(v) for v in value)
    return str(value)


def resolve_parameters(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    declared = template.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise StackError(
            f"unknown parameter(s) {', '.join(unknown)}; the template declares: {', '.join(declared)}"
        )
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            value = overrides[name]
        elif "Default" in spec:
            value = _param_str(spec["Default"])
        else:
            # No default (e.g. a NoEcho secret): an error only where a table or queue uses it.
            continue
        _check_parameter(name, spec, value)
        values[name] = value
    return values


def _check_parameter(name: str, spec: dict[str, Any], value: str) -> None:
    ptype = spec.get("Type", "String")
    allowed = spec.get("AllowedValues")
    if ptype == "Number":
        try:
            number = float(value)
        except ValueError:
            raise StackError(f"parameter {name}={value!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise StackError(f"parameter {name}={value} is below MinValue {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise StackError(f"parameter {name}={value} is above MaxValue {spec['MaxValue']}")
        if allowed is not None and number not in [float(a) for a in allowed]:
            raise StackError(f"parameter {name}={value} is not one of {allowed}")
        return
    if allowed is not None and value not in [_param_str(a) for a in allowed]:
        raise StackError(f"parameter {name}={value!r} is not one of {[_param_str(a) for a in allowed]}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and ptype == "String" and not re.fullmatch(pattern, value):
        raise StackError(f"parameter {name}={value!r} does not match AllowedPattern {pattern}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise StackError(f"parameter {name} is shorter than MinLength {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise StackError(f"parameter {name} is longer than MaxLength {spec['MaxLength']}")


def check_rules(template: dict[str, Any], resolver: "Resolver") -> None:
    """The template's Rules (parameter assertions), as CloudFormation checks them before a deploy."""
    for name, rule in (template.get("Rules") or {}).items():
        where = f"Rules.{name}"
        if "RuleCondition" in rule and not resolver.rule_value(rule["RuleCondition"], where):
            continue
        for assertion in rule.get("Assertions") or []:
            if not resolver.rule_value(assertion["Assert"], where):
                reason = assertion.get("AssertDescription") or f"assertion {assertion['Assert']!r} failed"
                raise StackError(f"rule {name}: {reason}")


def shown_parameters(template: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    declared = template.get("Parameters") or {}
    return {
        name: ("****" if declared[name].get("NoEcho") in (True, "true") and value else value)
        for name, value in values.items()
    }


class Resolver:
    """Evaluates intrinsic functions the way CloudFormation would for one stack."""

    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str],
        region: str,
        stack_name: str,
        describe_only: bool = False,
    ):
        self.template = template
        self.parameters = parameters
        self.mappings = template.get("Mappings") or {}
        self.condition_specs = template.get("Conditions") or {}
        self.resources = template.get("Resources") or {}
        self.describe_only = describe_only
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{stack_name}/local",
            "AWS::NotificationARNs": [],
        }
        self.created: dict[str, dict[str, Any]] = {}  # logical id -> {"Ref": ..., attr: ...}
        self._conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    # -- conditions
    def condition(self, name: str) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        if name not in self.condition_specs:
            raise StackError(f"unknown condition {name}")
        if name in self._evaluating:
            raise StackError(f"condition {name} refers to itself")
        self._evaluating.add(name)
        value = self._condition_value(self.condition_specs[name], name)
        self._evaluating.discard(name)
        self._conditions[name] = value
        return value

    def _condition_value(self, node: Any, where: str) -> bool:
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::Equals":
                a, b = (self.resolve(x, where) for x in arg)
                return _param_str(a) == _param_str(b)
            if fn == "Fn::Not":
                return not self._condition_value(arg[0], where)
            if fn == "Fn::And":
                return all(self._condition_value(x, where) for x in arg)
            if fn == "Fn::Or":
                return any(self._condition_value(x, where) for x in arg)
        value = self.resolve(node, where)
        if isinstance(value, bool):
            return value
        raise StackError(f"{where}: cannot evaluate condition {node!r}")

    def rule_value(self, node: Any, where: str) -> bool:
        """Rule functions: Fn::Equals/Not/And/Or/Contains/EachMemberEquals/EachMemberIn over parameters."""
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Fn::Not":
                return not self.rule_value(arg[0], where)
            if fn == "Fn::And":
                return all(self.rule_value(x, where) for x in arg)
            if fn == "Fn::Or":
                return any(self.rule_value(x, where) for x in arg)
            if fn == "Fn::Contains":
                items, value = self.resolve(arg[0], where), self.resolve(arg[1], where)
                return _param_str(value) in [_param_str(v) for v in items]
            if fn == "Fn::EachMemberEquals":
                items, value = self.resolve(arg[0], where), self.resolve(arg[1], where)
                return all(_param_str(v) == _param_str(value) for v in items)
            if fn == "Fn::EachMemberIn":
                items, allowed = self.resolve(arg[0], where), self.resolve(arg[1], where)
                return all(_param_str(v) in [_param_str(a) for a in allowed] for v in items)
        return self._condition_value(node, where)

    def resource_enabled(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return True if cond is None else self.condition(cond)

    # -- values
    def resolve(self, node: Any, where: str) -> Any:
        if isinstance(node, list):
            out = [self.resolve(v, where) for v in node]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._intrinsic(key, arg, where)
        out = {k: self.resolve(v, f"{where}.{k}") for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def _intrinsic(self, fn: str, arg: Any, where: str) -> Any:
        if fn == "Ref":
            return self._ref(arg, where)
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::GetAtt":
            if isinstance(arg, str):
                arg = arg.split(".", 1)
            logical_id, attribute = arg[0], self.resolve(arg[1], where)
            return self._attribute(logical_id, attribute, where)
        if fn == "Fn::If":
            name, if_true, if_false = arg
            return self.resolve(if_true if self.condition(name) else if_false, where)
        if fn == "Fn::FindInMap":
            map_name, top, second = (_param_str(self.resolve(x, where)) for x in arg[:3])
            try:
                mapping = self.mappings[map_name]
                top_level = {str(k): v for k, v in mapping.items()}[top]
                return {str(k): v for k, v in top_level.items()}[second]
            except KeyError:
                if len(arg) > 3 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
                    return self.resolve(arg[3]["DefaultValue"], where)
                raise StackError(f"{where}: Fn::FindInMap [{map_name}, {top}, {second}] has no value") from None
        if fn == "Fn::Sub":
            if isinstance(arg, str):
                text, variables = arg, {}
            else:
                text, variables = arg[0], self.resolve(arg[1], where)
            return self._sub(text, variables, where)
        if fn == "Fn::Join":
            sep, items = arg
            return _param_str(sep).join(_param_str(v) for v in self.resolve(items, where))
        if fn == "Fn::Select":
            index, items = self.resolve(arg[0], where), self.resolve(arg[1], where)
            return items[int(index)]
        if fn == "Fn::Split":
            sep, text = arg
            return _param_str(self.resolve(text, where)).split(sep)
        if fn == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg, where), separators=(",", ":"), default=str)
        if fn == "Fn::Base64":
            import base64

            return base64.b64encode(_param_str(self.resolve(arg, where)).encode()).decode()
        if fn in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self._condition_value({fn: arg}, where)
        raise StackError(f"{where}: {fn} is not supported by this script")

    def _ref(self, name: str, where: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in (self.template.get("Parameters") or {}):
            raise StackError(f"{where}: parameter {name} has no default; pass --param {name}=VALUE")
        return self._attribute(name, "Ref", where)

    def _attribute(self, logical_id: str, attribute: str, where: str) -> Any:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise StackError(f"{where}: refers to {logical_id}, which the template does not declare")
        if resource.get("Type") not in SUPPORTED:
            raise StackError(
                f"{where}: refers to {logical_id} ({resource.get('Type')}); only tables and queues are created here"
            )
        if not self.resource_enabled(logical_id):
            raise StackError(f"{where}: refers to {logical_id}, whose Condition is false")
        if self.describe_only:
            return Placeholder(logical_id, attribute)
        values = self.created.get(logical_id)
        if values is None:
            raise StackError(f"{where}: {logical_id} is not created yet (dependency cycle?)")
        if attribute not in values:
            raise StackError(f"{where}: {logical_id} has no attribute {attribute} here")
        return values[attribute]

    def _sub(self, text: str, variables: dict[str, Any], where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return _param_str(variables[expr])
            if "." in expr and expr.split(".", 1)[0] in self.resources:
                logical_id, attribute = expr.split(".", 1)
                return _param_str(self._attribute(logical_id, attribute, where))
            return _param_str(self._ref(expr, where))

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def references(node: Any) -> set[str]:
    """Logical ids (or parameter names) a node refers to via Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(node, list):
        for v in node:
            found |= references(v)
    elif isinstance(node, dict):
        for key, arg in node.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg.split(".", 1)[0] if isinstance(arg, str) else arg[0])
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                for expr in re.findall(r"\$\{([^}!][^}]*)\}", text):
                    found.add(expr.split(".", 1)[0])
                if not isinstance(arg, str):
                    found |= references(arg[1])
            else:
                found |= references(arg)
    return found


def ordered_resources(template: dict[str, Any], resolver: Resolver) -> tuple[list[str], list[str]]:
    """Enabled tables/queues in dependency order, and the skipped ones (Condition false)."""
    resources = template.get("Resources") or {}
    wanted = [lid for lid, r in resources.items() if r.get("Type") in SUPPORTED]
    enabled = [lid for lid in wanted if resolver.resource_enabled(lid)]
    skipped = [lid for lid in wanted if lid not in enabled]
    deps: dict[str, set[str]] = {}
    for lid in enabled:
        res = resources[lid]
        depends_on = res.get("DependsOn") or []
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        deps[lid] = {d for d in references(res.get("Properties") or {}) | set(depends_on) if d in enabled}
    order: list[str] = []
    pending = list(enabled)
    while pending:
        ready = [lid for lid in pending if deps[lid] <= set(order)]
        if not ready:
            raise StackError(f"dependency cycle among {', '.join(pending)}")
        order.extend(ready)
        pending = [lid for lid in pending if lid not in ready]
    return order, skipped


# --------------------------------------------------------------------------- conversions


def _int(value: Any, where: str) -> int:
    try:
        number = float(_param_str(value))
    except ValueError:
        raise StackError(f"{where}: {value!r} is not a number") from None
    if number != int(number):
        raise StackError(f"{where}: {value!r} is not an integer")
    return int(number)


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = _param_str(value).lower()
    if text in ("true", "false"):
        return text == "true"
    raise StackError(f"{where}: {value!r} is not a boolean")


def _json_policy(policy: Any, where: str, describe: bool) -> Any:
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            raise StackError(f"{where}: not JSON: {policy!r}") from None
    out = dict(policy)
    if "maxReceiveCount" in out:
        out["maxReceiveCount"] = _int(out["maxReceiveCount"], f"{where}.maxReceiveCount")
    target = out.get("deadLetterTargetArn")
    if describe and isinstance(target, Placeholder):
        out.pop("deadLetterTargetArn")
        out = {"deadLetterQueue": target.logical_id, **out}
    if "sourceQueueArns" in out:
        out["sourceQueueArns"] = [
            (v.logical_id if describe and isinstance(v, Placeholder) else v) for v in out["sourceQueueArns"]
        ]
    return out


def queue_properties(logical_id: str, props: dict[str, Any], describe: bool) -> dict[str, Any]:
    """Typed queue properties (describe) / the same, to be stringified for SetQueueAttributes."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        where = f"{logical_id}.{key}"
        if key in QUEUE_INT_ATTRIBUTES:
            out[key] = _int(value, where)
        elif key in QUEUE_BOOL_ATTRIBUTES:
            out[key] = _bool(value, where)
        elif key in QUEUE_STR_ATTRIBUTES:
            out[key] = _param_str(value)
        elif key in QUEUE_JSON_ATTRIBUTES:
            out[key] = _json_policy(value, where, describe)
        elif key in QUEUE_IGNORED:
            continue
        else:
            raise StackError(f"{where}: property not supported by this script")
    return out


def queue_attributes(typed: dict[str, Any]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for key, value in typed.items():
        if isinstance(value, bool):
            attributes[key] = "true" if value else "false"
        elif isinstance(value, dict):
            attributes[key] = json.dumps(value, separators=(",", ":"))
        else:
            attributes[key] = str(value)
    return attributes


def table_description(logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
    """The table as the template declares it, in DynamoDB API shapes."""
    unknown = sorted(set(props) - set(TABLE_HANDLED))
    if unknown:
        raise StackError(f"{logical_id}: properties not supported by this script: {', '.join(unknown)}")
    if "KeySchema" not in props or "AttributeDefinitions" not in props:
        raise StackError(f"{logical_id}: KeySchema and AttributeDefinitions are required")
    ttl = props.get("TimeToLiveSpecification")
    pitr = props.get("PointInTimeRecoverySpecification") or {}
    sse = props.get("SSESpecification") or {}
    stream = props.get("StreamSpecification") or {}
    return {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
        "GlobalSecondaryIndexes": props.get("GlobalSecondaryIndexes", []),
        "LocalSecondaryIndexes": props.get("LocalSecondaryIndexes", []),
        "TimeToLive": (
            {
                "AttributeName": ttl["AttributeName"],
                "Enabled": _bool(ttl.get("Enabled", False), f"{logical_id}.TimeToLiveSpecification.Enabled"),
            }
            if ttl
            else None
        ),
        "PointInTimeRecoveryEnabled": _bool(pitr.get("PointInTimeRecoveryEnabled", False), f"{logical_id}.PITR"),
        "SSEEnabled": _bool(sse.get("SSEEnabled", False), f"{logical_id}.SSESpecification.SSEEnabled"),
        "StreamViewType": stream.get("StreamViewType"),
    }


def _throughput(value: dict[str, Any], where: str) -> dict[str, int]:
    return {k: _int(v, f"{where}.{k}") for k, v in value.items()}


def create_table_request(name: str, logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
    desc = table_description(logical_id, props)
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": desc["AttributeDefinitions"],
        "KeySchema": desc["KeySchema"],
        "BillingMode": desc["BillingMode"],
    }
    if "ProvisionedThroughput" in props:
        request["ProvisionedThroughput"] = _throughput(props["ProvisionedThroughput"], f"{logical_id}.ProvisionedThroughput")
    elif desc["BillingMode"] == "PROVISIONED":
        raise StackError(f"{logical_id}: BillingMode PROVISIONED needs ProvisionedThroughput")
    if "OnDemandThroughput" in props:
        request["OnDemandThroughput"] = _throughput(props["OnDemandThroughput"], f"{logical_id}.OnDemandThroughput")
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = []
        for index in props.get(key, []):
            index = dict(index)
            for tkey in ("ProvisionedThroughput", "OnDemandThroughput"):
                if tkey in index:
                    index[tkey] = _throughput(index[tkey], f"{logical_id}.{key}.{tkey}")
            index.pop("ContributorInsightsSpecification", None)
            indexes.append(index)
        if indexes:
            request[key] = indexes
    if desc["StreamViewType"]:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": desc["StreamViewType"]}
    sse = props.get("SSESpecification")
    if sse:
        request["SSESpecification"] = {"Enabled": desc["SSEEnabled"]}
        if "SSEType" in sse:
            request["SSESpecification"]["SSEType"] = sse["SSEType"]
        if "KMSMasterKeyId" in sse:
            request["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
    if "TableClass" in props:
        request["TableClass"] = props["TableClass"]
    if "DeletionProtectionEnabled" in props:
        request["DeletionProtectionEnabled"] = _bool(props["DeletionProtectionEnabled"], f"{logical_id}.DeletionProtectionEnabled")
    if props.get("Tags"):
        request["Tags"] = [{"Key": str(t["Key"]), "Value": _param_str(t["Value"])} for t in props["Tags"]]
    return request


# --------------------------------------------------------------------------- commands


def _clients(endpoint: str, region: str):
    import boto3
    from botocore.config import Config

    # Explicit (dummy unless given) credentials: never walk the credential chain, which would
    # probe the instance metadata endpoint when nothing is configured.
    session = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or "testing",
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or "testing",
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
        region_name=region,
    )
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
    return (
        session.client("dynamodb", endpoint_url=endpoint, config=config),
        session.client("sqs", endpoint_url=endpoint, config=config),
    )


def _key_schema(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in items]


def create_table(ddb, name: str, logical_id: str, props: dict[str, Any]) -> None:
    from botocore.exceptions import ClientError

    request = create_table_request(name, logical_id, props)
    try:
        ddb.create_table(**request)
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceInUseException":
            raise
        existing = ddb.describe_table(TableName=name)["Table"]
        if _key_schema(existing["KeySchema"]) != _key_schema(request["KeySchema"]):
            raise StackError(
                f"table {name} already exists with key schema {existing['KeySchema']}, "
                f"the template declares {request['KeySchema']}"
            ) from None
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    desc = table_description(logical_id, props)
    ttl = desc["TimeToLive"]
    if ttl and ttl["Enabled"]:
        current = ddb.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
        if not (current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and current.get("AttributeName") == ttl["AttributeName"]):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
    if desc["PointInTimeRecoveryEnabled"]:
        ddb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )


def create_queue(sqs, name: str, typed: dict[str, Any], tags: dict[str, str]) -> dict[str, str]:
    from botocore.exceptions import ClientError

    attributes = queue_attributes(typed)
    kwargs: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if tags:
        kwargs["tags"] = tags
    try:
        url = sqs.create_queue(**kwargs)["QueueUrl"]
    except ClientError as err:
        code = err.response["Error"]["Code"]
        if code in ("QueueAlreadyExists", "QueueNameExists", "AWS.SimpleQueueService.QueueNameExists"):
            raise StackError(
                f"queue {name} already exists with different attributes; use another --prefix"
            ) from None
        raise
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    for key, want in attributes.items():
        have = got.get(key)
        if key in QUEUE_JSON_ATTRIBUTES and have is not None:
            same = json.loads(have) == json.loads(want) or _loose_equal(json.loads(have), json.loads(want))
        else:
            same = have == want
        if not same:
            raise StackError(f"queue {name}: attribute {key} is {have!r} after creation, expected {want!r}")
    return {"Ref": url, "QueueUrl": url, "Arn": got["QueueArn"], "QueueName": name}


def _loose_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """maxReceiveCount comes back as a string from some endpoints."""
    return {k: str(v) for k, v in a.items()} == {k: str(v) for k, v in b.items()}


def cmd_create(args: argparse.Namespace) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    template = load_template(Path(args.template))
    parameters = resolve_parameters(template, parse_params(args.param))
    stack_name = args.prefix.rstrip("-_") or "local"
    resolver = Resolver(template, parameters, args.region, stack_name)
    check_rules(template, resolver)
    order, _skipped = ordered_resources(template, resolver)
    ddb, sqs = _clients(args.endpoint, args.region)
    result: dict[str, Any] = {}
    try:
        for logical_id in order:
            resource = template["Resources"][logical_id]
            props = resolver.resolve(resource.get("Properties") or {}, logical_id)
            name = args.prefix + logical_id
            if resource["Type"] == TABLE:
                create_table(ddb, name, logical_id, props)
                arn = ddb.describe_table(TableName=name)["Table"].get("TableArn")
                resolver.created[logical_id] = {"Ref": name, "Arn": arn}
                result[logical_id] = name
            else:
                typed = queue_properties(logical_id, props, describe=False)
                if typed.get("FifoQueue"):
                    name += ".fifo"
                tags = {str(t["Key"]): _param_str(t["Value"]) for t in props.get("Tags", [])}
                values = create_queue(sqs, name, typed, tags)
                resolver.created[logical_id] = values
                result[f"{logical_id}Url"] = values["QueueUrl"]
                result[f"{logical_id}Arn"] = values["Arn"]
                result[f"{logical_id}Name"] = name
    except EndpointConnectionError:
        raise StackError(f"cannot connect to {args.endpoint}; is the local AWS endpoint (moto_server) running?") from None
    except ClientError as err:
        error = err.response.get("Error", {})
        raise StackError(f"{err.operation_name} failed: {error.get('Code')}: {error.get('Message')}") from None
    except BotoCoreError as err:
        raise StackError(f"AWS SDK error against {args.endpoint}: {err}") from None
    in_template_order: dict[str, Any] = {}
    for logical_id in template["Resources"]:
        for key in (logical_id, f"{logical_id}Url", f"{logical_id}Arn", f"{logical_id}Name"):
            if key in result:
                in_template_order[key] = result[key]
    in_template_order["Parameters"] = shown_parameters(template, parameters)
    return in_template_order


def _describe_value(value: Any) -> Any:
    if isinstance(value, Placeholder):
        return str(value)
    if isinstance(value, dict):
        return {k: _describe_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_describe_value(v) for v in value]
    return value


def cmd_describe(args: argparse.Namespace) -> dict[str, Any]:
    template = load_template(Path(args.template))
    parameters = resolve_parameters(template, parse_params(args.param))
    resolver = Resolver(template, parameters, args.region, "local", describe_only=True)
    check_rules(template, resolver)
    order, skipped = ordered_resources(template, resolver)
    tables: dict[str, Any] = {}
    queues: dict[str, Any] = {}
    for logical_id in order:
        resource = template["Resources"][logical_id]
        props = resolver.resolve(resource.get("Properties") or {}, logical_id)
        condition = resource.get("Condition")
        if resource["Type"] == TABLE:
            tables[logical_id] = {**table_description(logical_id, props), "Condition": condition}
        else:
            typed = queue_properties(logical_id, props, describe=True)
            queues[logical_id] = {**typed, "Condition": condition}
    rank = {logical_id: i for i, logical_id in enumerate(template["Resources"])}
    return _describe_value(
        {
            "Parameters": shown_parameters(template, parameters),
            "Tables": dict(sorted(tables.items(), key=lambda kv: rank[kv[0]])),
            "Queues": dict(sorted(queues.items(), key=lambda kv: rank[kv[0]])),
            "Skipped": skipped,
        }
    )


def parse_params(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise StackError(f"--param wants Name=Value, got {item!r}")
        out[name] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Create/describe the template's DynamoDB tables and SQS queues on a local AWS endpoint."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    default_region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--template", default=str(DEFAULT_TEMPLATE), help="SAM/CloudFormation template (default: %(default)s)")
        p.add_argument("--param", action="append", metavar="NAME=VALUE", help="override a parameter's default (repeatable)")
        p.add_argument("--region", default=default_region, help="region (default: %(default)s)")
        p.add_argument("--pretty", action="store_true", help="indent the JSON output")

    create = sub.add_parser("create", help="create the tables and queues; print their names/URLs/ARNs as JSON")
    common(create)
    create.add_argument("--endpoint", required=True, help="local AWS endpoint, e.g. http://127.0.0.1:5055")
    create.add_argument("--prefix", required=True, help="physical name prefix; names are PREFIX + logical id")
    describe = sub.add_parser("describe", help="print the declared table key schema and queue properties as JSON")
    common(describe)

    args = parser.parse_args(argv)
    try:
        if args.command == "create":
            if not re.fullmatch(r"https?://[^\s/]+/?", args.endpoint):
                raise StackError(f"--endpoint must be http(s)://host:port, got {args.endpoint!r}")
            if not re.fullmatch(r"[A-Za-z0-9_-]*", args.prefix):
                raise StackError(f"--prefix may only hold letters, digits, '-' and '_', got {args.prefix!r}")
            result = cmd_create(args)
        else:
            result = cmd_describe(args)
    except StackError as err:
        print(f"stack_resources: error: {err}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2 if args.pretty else None)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
