"""Alpaca-shaped errors: every failure answers {"code": <8 digits>, "message": ...} (alpaca-py reads "code")."""

from __future__ import annotations

from typing import Any

BAD_REQUEST = 40010000
INVALID = 40010001
UNAUTHORIZED = 40110000
FORBIDDEN = 40310000
PDT_DENIED = 40310100
NOT_FOUND = 40410000
METHOD_NOT_ALLOWED = 40510000
TOO_LARGE = 41310000
NOT_CANCELABLE = 42210000
RATE_LIMITED = 42910000
SERVER_ERROR = 50010000


class ApiError(Exception):
    """Raised anywhere in a request; the app turns it into the JSON error answer."""

    def __init__(self, status: int, code: int, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def invalid(message: str) -> ApiError:
    return ApiError(422, INVALID, message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, BAD_REQUEST, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, NOT_FOUND, message)


def forbidden(message: str, **extra: Any) -> ApiError:
    return ApiError(403, FORBIDDEN, message, **extra)
