"""The server's OpenAPI document (FastAPI's ``app.openapi()``): the bearer scheme on ``/v1/*`` when a token is set,
and every route's error answers declared with the one error model; the auth behaviour it documents."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from sam3_agent.server.api import create_app
from sam3_agent.server.settings import ServerSettings
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.scene_clicks import SceneClicker

SCENE = Scene(60, 40, [SceneObject("cup", (10, 10, 30, 30), score=0.9)])
TOKEN = "openapi-token"
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
ERRORS = {  # route -> the error codes it declares, without 401 (declared only when a token is set)
    ("post", "/v1/images"): {400, 413, 415, 422},
    ("post", "/v1/segment"): {400, 404, 413, 422, 429, 503, 504},
    ("post", "/v1/segment_at"): {400, 404, 413, 422, 501, 503, 504},
    ("get", "/v1/info"): set(),
    ("get", "/readyz"): {503},
    ("get", "/healthz"): set(),
    ("get", "/metrics"): set(),
}


def openapi(token: str | None) -> dict[str, Any]:
    app = create_app(SceneSegmenter(SCENE), ServerSettings(token=token), clicker=SceneClicker(SCENE))
    return app.openapi()


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): op for path, ops in doc["paths"].items() for method, op in ops.items()}


def test_with_a_token_the_bearer_scheme_guards_every_v1_operation() -> None:
    doc = openapi(TOKEN)
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer") and "--token" in scheme["description"]
    ops = operations(doc)
    assert set(ERRORS) <= set(ops)
    for (method, path), op in ops.items():
        if path.startswith("/v1/"):
            assert op.get("security") == [{"bearer": []}], (method, path)
        else:
            assert "security" not in op, f"{path} is open to probes and scrapers"


def test_without_a_token_nothing_is_declared_protected() -> None:
    doc = openapi(None)
    assert "securitySchemes" not in doc.get("components", {})
    ops = operations(doc)
    assert all("security" not in op for op in ops.values())
    assert all("401" not in op["responses"] for op in ops.values())


@pytest.mark.parametrize("token", [TOKEN, None])
def test_every_route_declares_its_error_answers_with_the_error_model(token: str | None) -> None:
    doc = openapi(token)
    for key, op in operations(doc).items():
        if key not in ERRORS:
            continue
        want = ERRORS[key] | ({401} if token and key[1].startswith("/v1/") else set())
        declared = {int(code) for code in op["responses"] if code != "200"}
        assert declared == want, key
        for code in map(str, want):
            response = op["responses"][code]
            assert response["content"]["application/json"]["schema"] == ERROR_REF, (key, code)
            assert response["description"] and response["description"] != "Validation Error", (key, code)
    schemas = doc["components"]["schemas"]
    assert set(schemas["ErrorBody"]["required"]) == {"error", "type"}
    assert {"method_not_allowed", "not_found", "unauthorized"} <= set(schemas["ErrorType"]["enum"])
    assert "HTTPValidationError" not in schemas, "422s are our error body, not FastAPI's default"
    ready = operations(doc)[("get", "/readyz")]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ready == {"$ref": "#/components/schemas/Readiness"}


def test_the_documented_auth_is_the_servers_auth() -> None:
    """What Swagger's "Authorize" sends (``Authorization: Bearer <token>``) is what the server takes; everything
    else keeps the server's own 401 body, never FastAPI's ``{"detail": "Not authenticated"}``."""
    app = create_app(SceneSegmenter(SCENE), ServerSettings(token=TOKEN))
    with TestClient(app) as client:
        assert client.get("/v1/info", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        refused = {
            "missing": client.get("/v1/info"),
            "basic": client.get("/v1/info", headers={"Authorization": "Basic dXNlcjpwdw=="}),
            "wrong": client.get("/v1/info", headers={"Authorization": "Bearer nope"}),
        }
        for name, response in refused.items():
            assert response.status_code == 401 and response.json()["type"] == "unauthorized", name
            assert response.headers["www-authenticate"] == 'Bearer realm="sam3-agent"', name
        assert refused["missing"].json()["error"].startswith("missing bearer token")
        assert refused["wrong"].json() == {"error": "invalid bearer token", "type": "unauthorized"}
        docs = client.get("/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text and client.get("/openapi.json").status_code == 200
