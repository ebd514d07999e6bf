"""Pydantic validation errors as one readable line, for the agent's tool results and the integrations' errors.

Depends on nothing else in the package, so both ``sam3_agent.agent`` and ``sam3_agent.integrations`` import it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def validation_message(exc: ValidationError, *, whole: str = "arguments", show_input: bool = False) -> str:
    """Every problem in ``exc`` as ``where: message``, joined by ``"; "``, without pydantic's documentation URLs.

    ``whole`` names where cross-field problems are (they have no field location). ``show_input`` adds
    ``(got <the rejected value, as JSON, clipped>)`` to each problem but a missing field.
    """
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or whole
        shown = show_input and err["type"] != "missing"
        got = f" (got {clip(json.dumps(err['input'], default=str), 60)})" if shown else ""
        parts.append(f"{where}: {err['msg']}{got}")
    return "; ".join(parts)


def clip(text: str, limit: int = 200) -> str:
    """``text``, cut to ``limit`` characters with ``...`` at the end when longer."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
