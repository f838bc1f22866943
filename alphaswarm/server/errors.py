"""The JSON error of the HTTP API: ``{"error": ..., "detail": ...}`` with a status code.

Handlers raise :class:`ApiError`; ``BaseHandler.write_error`` turns it (and any
unexpected exception, as a short 500) into the JSON body. Nothing is written to
the ledger before a request has been validated, so a rejected request changes
nothing.
"""

from __future__ import annotations

from typing import Any

#: Largest request body accepted (bytes).
MAX_BODY_BYTES = 1024 * 1024

#: The ``error`` code used for each status when none is given.
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    421: "unknown_host",
    422: "invalid",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An HTTP error with a JSON body.

    Parameters
    ----------
    status : int
        HTTP status code.
    detail : str
        A human sentence: what was wrong and, where it helps, what is allowed.
    error : str, optional
        A short machine-readable code (``ERROR_CODES[status]`` by default).
    **extra
        More keys of the JSON body (e.g. ``errors`` of a gate refusal).
    """

    def __init__(self, status: int, detail: str, error: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.error = error or ERROR_CODES.get(status, "error")
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return {"error": self.error, "detail": self.detail, **self.extra}


def bad_request(detail: str, **extra: Any) -> ApiError:
    """400: a body that cannot be parsed or has values of the wrong type."""
    return ApiError(400, detail, **extra)


def not_found(detail: str, **extra: Any) -> ApiError:
    """404: an unknown bot, run or route."""
    return ApiError(404, detail, **extra)


def conflict(detail: str, error: str = "conflict", **extra: Any) -> ApiError:
    """409: the gate refused, or the kill switch is engaged."""
    return ApiError(409, detail, error, **extra)


def invalid(detail: str, **extra: Any) -> ApiError:
    """422: well-formed values that are not allowed (negative cash, unknown keys ...)."""
    return ApiError(422, detail, **extra)


def too_large(size: int) -> ApiError:
    """413: a body over :data:`MAX_BODY_BYTES`."""
    return ApiError(413, f"the body is {size} bytes; at most {MAX_BODY_BYTES} are accepted")


def misdirected(host: str | None) -> ApiError:
    """421: the ``Host`` header names another server (a DNS-rebinding guard)."""
    shown = (host or "")[:100]
    return ApiError(
        421,
        f"this server does not answer to Host {shown!r}; use its address, localhost, or "
        "a name the server allows (alphaswarm serve --allow-host NAME)",
    )
