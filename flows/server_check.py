"""Whether a member's credentials open the Prefect server: one authenticated read.

Prefect's server answers ``/api/health`` to anyone; the rest of its API asks for the auth
string (``PREFECT_SERVER_API_AUTH_STRING``), which clients and workers send as HTTP basic
auth (``PREFECT_API_AUTH_STRING``). A refusal becomes one line naming the member, the
endpoint and what to fix, before anything of a round is started.
"""

from __future__ import annotations

import base64
import os

from fedspec.app.servers import ServerAuthError, ServerUnreachableError
from fedspec.errors import ErrorCode

_PROBE = "/flows/filter"


def check_prefect(api_url: str, auth_string: str | None, *, member: str) -> None:
    """Read one flow with ``auth_string`` (``member`` names who, in the message); raises
    ``ServerAuthError`` on 401/403 and ``ServerUnreachableError`` when no answer comes."""
    # Deferred: httpx comes with Prefect; the command line starts without it.
    import httpx

    headers = {"Content-Type": "application/json"}
    if auth_string:
        token = base64.b64encode(auth_string.encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    endpoint = f"{api_url.rstrip('/')}{_PROBE}"
    # The same CA bundle Prefect's own client would use (a private CA for a TLS server).
    verify: str | bool = (
        os.environ.get("PREFECT_API_SSL_CERT_FILE") or os.environ.get("SSL_CERT_FILE") or True
    )
    try:
        response = httpx.post(
            endpoint, json={"limit": 1}, headers=headers, verify=verify, timeout=30
        )
    except httpx.HTTPError as exc:
        raise ServerUnreachableError(
            f"member {member or '(no MLflow user set)'}: Prefect at {api_url} did not answer "
            f"POST {_PROBE} ({type(exc).__name__}): is it running, and is the URL (and, for "
            "https, PREFECT_API_SSL_CERT_FILE) right?"
        ) from None
    if response.status_code in (401, 403):
        fix = (
            "its PREFECT_API_AUTH_STRING is not the server's: source this member's "
            "<home>/servers/members/<org>.env from the current credentials"
            if auth_string
            else "it sent no auth string: set PREFECT_API_AUTH_STRING (source "
            "<home>/servers/members/<org>.env)"
        )
        raise ServerAuthError(
            f"member {member or '(no MLflow user set)'}: Prefect at {api_url} refused it "
            f"({response.status_code} on POST {_PROBE}): {fix}",
            code=ErrorCode.SERVER_FORBIDDEN
            if response.status_code == 403
            else ErrorCode.SERVER_UNAUTHORIZED,
            member=member,
            endpoint=_PROBE,
            status=response.status_code,
        )
    response.raise_for_status()
