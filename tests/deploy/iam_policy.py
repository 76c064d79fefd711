"""Enough of AWS IAM's policy evaluation to ask one question of a Terraform `aws_iam_policy_document`: would this S3
request be allowed?

The S3 calls themselves are recorded from the real clients (kserve-storage, our lake writer) against moto; moto
checks no IAM conditions, so the request context each call carries is mapped here from AWS's documentation:
"Required permissions for Amazon S3 API operations" (https://docs.aws.amazon.com/AmazonS3/latest/API/) and
"Condition keys for Amazon S3" (s3:prefix is only in a list request that names a prefix; HeadBucket has none).
Rules (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html): an explicit
Deny wins, then any Allow; a condition on a key the request does not carry is false unless its operator ends in
IfExists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

# S3 operation → (IAM action, on the bucket rather than an object). An operation missing here fails the test that
# meets it, so a kserve-storage upgrade that starts a new call is looked at, not waved through.
_ACTIONS = {
    "HeadBucket": ("s3:ListBucket", True),
    "ListObjects": ("s3:ListBucket", True),
    "ListObjectsV2": ("s3:ListBucket", True),
    "GetBucketLocation": ("s3:GetBucketLocation", True),
    "GetObject": ("s3:GetObject", False),
    "HeadObject": ("s3:GetObject", False),
    "PutObject": ("s3:PutObject", False),
    "CreateMultipartUpload": ("s3:PutObject", False),
    "UploadPart": ("s3:PutObject", False),
    "CompleteMultipartUpload": ("s3:PutObject", False),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload", False),
    "ListParts": ("s3:ListMultipartUploadParts", False),
}

# Request parameters that become S3 condition keys (list requests only).
_LIST_KEYS = {"Prefix": "s3:prefix", "Delimiter": "s3:delimiter", "MaxKeys": "s3:max-keys"}


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.action} on {self.resource} {self.context or ''}".rstrip()


def s3_request(operation: str, params: dict) -> Request:
    """The IAM request one S3 API call makes, from its operation name and API parameters."""
    if operation not in _ACTIONS:
        raise KeyError(f"S3 operation {operation} has no IAM mapping in tests/deploy/iam_policy.py; add it")
    action, on_bucket = _ACTIONS[operation]
    bucket = params["Bucket"]
    resource = f"arn:aws:s3:::{bucket}" if on_bucket else f"arn:aws:s3:::{bucket}/{params['Key']}"
    context = {}
    if operation.startswith("ListObjects"):
        context = {key: str(params[name]) for name, key in _LIST_KEYS.items() if name in params}
    return Request(action, resource, context)


def _like(value: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


_OPERATORS = {
    "StringEquals": lambda value, patterns: value in patterns,
    "StringLike": _like,
    "StringNotEquals": lambda value, patterns: value not in patterns,
    "StringNotLike": lambda value, patterns: not _like(value, patterns),
    "Bool": lambda value, patterns: value.lower() in [p.lower() for p in patterns],
}


def _condition_holds(condition: dict, context: dict[str, str]) -> bool:
    test = condition["test"]
    if_exists = test.endswith("IfExists")
    operator = _OPERATORS.get(test.removesuffix("IfExists"))
    if operator is None:
        raise KeyError(f"condition operator {test} is not modelled in tests/deploy/iam_policy.py; add it")
    value = context.get(condition["variable"])
    if value is None:
        return if_exists
    return operator(value, list(condition["values"]))


def _statement_matches(statement: dict, request: Request) -> bool:
    actions = statement.get("actions", [])
    resources = statement.get("resources", [])
    return (
        any(fnmatchcase(request.action.lower(), a.lower()) for a in actions)
        and any(fnmatchcase(request.resource, r) for r in resources)
        and all(_condition_holds(c, request.context) for c in statement.get("condition", []))
    )


def allowed(statements: list[dict], request: Request) -> bool:
    effect = [s.get("effect", "Allow") for s in statements if _statement_matches(s, request)]
    return "Deny" not in effect and "Allow" in effect


def resolve(statements: list[dict], names: dict[str, str]) -> list[dict]:
    """Statements with Terraform interpolations (`${aws_s3_bucket.models.arn}`, `${local.model_prefix}`)
    replaced from `names`; one left unresolved stays as text and so matches nothing real."""

    def sub(value):
        if isinstance(value, str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: names.get(m.group(1), m.group(0)), value)
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, dict):
            return {k: sub(v) for k, v in value.items()}
        return value

    return sub(statements)
