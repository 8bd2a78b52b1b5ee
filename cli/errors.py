"""One line a person can act on for the errors a CLI user meets: what is wrong, which thing, and
the command that fixes it. `homeflow --debug` shows the traceback instead."""
from __future__ import annotations

import botocore.exceptions as bex

from conf.settings import ConfigError

_NOT_FOUND = {"ResourceNotFoundException", "NoSuchBucket", "NoSuchKey", "NoSuchTableException",
              "TableNotFoundException"}
_AUTH = {"UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch",
         "ExpiredToken", "ExpiredTokenException", "AccessDenied", "AccessDeniedException"}


def _where(e: Exception) -> str:
    """The URL botocore could not reach, when the error carries it."""
    return getattr(e, "kwargs", {}).get("endpoint_url", "") or ""


def _sandbox_hint(endpoint: str | None) -> str:
    if endpoint:
        return "start the local sandbox with `homeflow sandbox up` (or fix aws.endpoint in the properties file)"
    return "check the network and the region, or set aws.endpoint in the properties file for the sandbox"


def describe(e: BaseException, endpoint: str | None = None) -> str | None:
    """The one-line message for `e`, or None when it is not an error a user can fix (a bug)."""
    if isinstance(e, ConfigError):
        return f"bad configuration: {e}; fix the properties file (see conf/local/application_properties.json)"
    if isinstance(e, (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ConnectionClosedError)):
        url = _where(e) or endpoint or "the AWS endpoint"
        return f"cannot reach {url}: nothing answers there; {_sandbox_hint(endpoint)}"
    if isinstance(e, (bex.NoCredentialsError, bex.PartialCredentialsError)):
        return ("no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                "homeflow.aws/access.key.id in the properties file (the sandbox's file has them)")
    if isinstance(e, bex.NoRegionError):
        return "no AWS region: pass --region or set homeflow.job/region in the properties file"
    if isinstance(e, bex.ClientError):
        err = e.response.get("Error", {})
        code, msg = err.get("Code", ""), err.get("Message", "") or str(e)
        op = getattr(e, "operation_name", "") or "a call"
        if code in _NOT_FOUND:
            return (f"not found ({op}): {msg}; create it: `homeflow sandbox up` on the local sandbox, "
                    f"the stacks in infra/ on AWS (README, Deploy to AWS)")
        if code in _AUTH:
            return f"AWS refused the credentials ({op}: {code}): {msg}; check AWS_PROFILE or the role's policy"
        return f"AWS error {code} in {op}: {msg}"
    if isinstance(e, FileNotFoundError):
        return f"file not found: {e.filename or e}"
    if isinstance(e, ConnectionRefusedError):
        return f"connection refused: {e}; {_sandbox_hint(endpoint)}"
    return None
