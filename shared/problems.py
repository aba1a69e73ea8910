"""RFC 9457 problem details for every HTTP error, with Chinese and English titles."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, OperationFailure
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "请求有误 / Bad request",
    401: "缺少凭据 / Missing credentials",
    403: "无权操作 / Forbidden",
    404: "未找到 / Not found",
    405: "方法不允许 / Method not allowed",
    409: "状态冲突 / Conflict",
    413: "请求过大 / Content too large",
    415: "不支持的类型 / Unsupported media type",
    422: "请求参数有误 / Invalid request",
    429: "请求过于频繁 / Too many requests",
    500: "服务器内部错误 / Internal server error",
    503: "服务暂不可用 / Service unavailable",
}


class Problem(Exception):
    """Raise to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str = "",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title or _TITLES.get(status, "Error")
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    request: Request, status: int, title: str, detail: str, **extra: Any
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _field(location: tuple[Any, ...]) -> str:
    # ("body", "submitter", "name") -> "submitter.name"; keep "query."/"path." prefixes.
    parts = [str(p) for p in location]
    return ".".join(parts[1:] if parts and parts[0] == "body" else parts) or "body"


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        response = problem_response(request, exc.status, exc.title, exc.detail, **exc.extra)
        response.headers.update(exc.headers)
        return response

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": _field(tuple(e["loc"])), "message": e["msg"], "code": e["type"]}
            for e in exc.errors()
        ]
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        return problem_response(
            request, 422, _TITLES[422], f"Invalid fields 字段有误: {fields}", errors=errors
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        title = _TITLES.get(exc.status_code, "Error")
        return problem_response(request, exc.status_code, title, str(exc.detail))

    def unavailable(request: Request, why: str) -> JSONResponse:
        response = problem_response(request, 503, _TITLES[503], f"{why}; try again shortly.")
        response.headers["Retry-After"] = "2"
        return response

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return unavailable(request, "The database is unreachable")

    async def on_store_error(request: Request, exc: Exception) -> JSONResponse:
        # FerretDB on SQLite answers "database is locked" when a write could not get the lock
        # in time: a moment of contention, not a bug. Anything else is a crash (logged, 500).
        if "SQLITE_BUSY" in str(exc):
            return unavailable(request, "The database is busy")
        raise exc

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, 500, _TITLES[500], "The error was logged.")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ConnectionFailure, on_unavailable)
    app.add_exception_handler(OperationFailure, on_store_error)
    app.add_exception_handler(Exception, on_crash)
