"""Generated requests against the real server's OpenAPI schema (schemathesis).

For every operation the schema lists, requests generated from the schema, valid
and invalid, as an admin:
- never get a 5xx;
- every 4xx carries the error body `{"error": {"code", "message", "requestId"}}`,
  with a code of `readerai/errors.py` (or of the HTTP errors `api/problems.py`
  names) and the status that code goes with, and `requestId` equal to the
  `X-Request-ID` header;
- every response whose status the operation documents has the documented body.

Left out: `GET /api/classes/{id}/feed`, a server-sent event stream that never ends
(`tests/api/test_classroom_live.py` covers it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, event, settings
from schemathesis.checks import response_schema_conformance

from readerai.api.problems import _HTTP_CODES
from readerai.app import create_app
from readerai.errors import ReaderAIError
from readerai.settings import Settings
from tests.fixtures_server import ServerProcess, auth_headers, mint_token, running_server

EXAMPLES = 25


def _error_statuses() -> dict[str, set[int]]:
    """Each error code, with the HTTP statuses it is sent with."""
    statuses: defaultdict[str, set[int]] = defaultdict(set)
    pending: list[type[ReaderAIError]] = [ReaderAIError]
    while pending:
        error = pending.pop()
        statuses[error.code].add(error.http_status)
        pending += error.__subclasses__()
    for status, code in _HTTP_CODES.items():
        statuses[code].add(status)
    return dict(statuses)


ERROR_STATUSES = _error_statuses()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Passages added by generated requests are narrated by a job: point speech at a
    # closed port, so each job fails at once instead of synthesising for minutes.
    env = {
        "READERAI_TTS": "openai",
        "READERAI_STT": "openai",
        "READERAI_OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    }
    with running_server(tmp_path_factory.mktemp("openapi"), **env) as srv:
        yield srv


def served_schema() -> dict[str, Any]:
    """The OpenAPI schema the app serves at `/openapi.json` (no server needed to read it)."""
    openapi: dict[str, Any] = create_app(Settings()).app.openapi()
    return openapi


# Loaded here, not from the running server: schemathesis builds its tests when
# pytest collects them (its fixture-based loader does not work with pytest 9).
# `test_the_schema_tested_is_the_one_served` checks that the two are the same.
schema = schemathesis.openapi.from_dict(served_schema()).exclude(path_regex=r"/feed$")
ADMIN = auth_headers(mint_token("admin", "schemathesis-admin"))


def check_error_body(status: int, body: Any, request_id: str) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message", "requestId"}, error
    assert error["code"] in ERROR_STATUSES, f"undocumented error code {error['code']!r}"
    assert status in ERROR_STATUSES[error["code"]], f"{error['code']} sent with {status}"
    assert isinstance(error["message"], str) and error["message"]
    assert error["requestId"] == request_id


@pytest.mark.timeout(180)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_no_server_error_and_documented_error_bodies(
    server: ServerProcess, case: schemathesis.Case[Any]
) -> None:
    response = case.call(base_url=server.base_url, headers=ADMIN, timeout=30)
    event(f"status {response.status_code}")
    sent = f"{case.method} {case.formatted_path} {case.query} {case.media_type} {case.body!r}"
    assert response.status_code < 500, f"{sent}: {response.status_code} {response.text}"
    if response.status_code >= 400:
        (request_id,) = response.headers["x-request-id"]  # keys lower-cased, values lists
        check_error_body(response.status_code, response.json(), request_id)
    # A status the operation documents comes with the body documented for it.
    case.validate_response(response, checks=[response_schema_conformance])


#: What generated requests found, each once a 500 or an undocumented error code.
FOUND = [
    ("POST", "/api/sessions", {"json": {"userId": ""}}, 422, "invalid_payload"),
    ("GET", f"/api/passages/p/audio/{2**63}", {}, 422, "invalid_payload"),
    ("GET", "/api/sessions/{session}/messages?before=" + str(2**63), {}, 422, "invalid_payload"),
    (
        "POST",
        "/api/sessions",
        {"content": b'{"passageId": "\xff"}', "headers": {"content-type": "application/json"}},
        400,
        "invalid_json",
    ),
]


@pytest.mark.parametrize(("method", "path", "sent", "status", "code"), FOUND)
def test_requests_once_found_failing_get_documented_errors(
    server: ServerProcess,
    method: str,
    path: str,
    sent: dict[str, Any],
    status: int,
    code: str,
) -> None:
    if "{session}" in path:
        created = httpx.post(f"{server.base_url}/api/sessions", json={}, headers=ADMIN)
        path = path.replace("{session}", created.raise_for_status().json()["id"])
    headers = {**ADMIN, **sent.get("headers", {})}
    body = {k: v for k, v in sent.items() if k != "headers"}
    response = httpx.request(method, server.base_url + path, headers=headers, **body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    check_error_body(status, response.json(), response.headers["x-request-id"])


def test_the_schema_tested_is_the_one_served(server: ServerProcess) -> None:
    assert httpx.get(f"{server.base_url}/openapi.json").json() == served_schema()


def test_the_schema_documents_every_4xx_as_the_error_body() -> None:
    error_body = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in served_schema()["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    body = response["content"]["application/json"]["schema"]
                    assert body == error_body, (
                        f"{method.upper()} {path} documents {status} as {body}"
                    )
