"""RFC 9457 problem details for every HTTP error, with Chinese and English titles."""

from collections.abc import Mapping
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

    @classmethod
    def of_field(cls, status: int, field: str, message: str, code: str = "invalid") -> "Problem":
        """A problem with one bad request field, named as the validation errors name them."""
        error = {"field": field, "message": message, "code": code}
        return cls(status, detail=f"Invalid fields 字段有误: {field}", errors=[error])


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


# Chinese for pydantic's error types, with its context values (e.g. {max_length}).
_CHINESE: dict[str, str] = {
    "missing": "必填",
    "string_too_short": "至少 {min_length} 个字",
    "string_too_long": "最多 {max_length} 个字",
    "too_short": "至少 {min_length} 项",
    "too_long": "最多 {max_length} 项",
    "string_pattern_mismatch": "格式不正确",
    "string_type": "应为文字",
    "enum": "应为以下之一：{expected}",
    "literal_error": "应为以下之一：{expected}",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "float_parsing": "应为数字",
    "bool_parsing": "应为是或否",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "不能小于 {ge}",
    "less_than": "应小于 {lt}",
    "less_than_equal": "不能大于 {le}",
    "date_from_datetime_parsing": "日期格式应为 YYYY-MM-DD",
    "date_parsing": "日期格式应为 YYYY-MM-DD",
    "datetime_from_date_parsing": "时间格式不正确",
    "datetime_parsing": "时间格式不正确",
    "timezone_aware": "时间须带时区",
    "json_invalid": "JSON 格式错误",
    "model_type": "格式不正确",
    "dict_type": "格式不正确",
    "list_type": "应为列表",
    "value_error": "{error}",
    "extra_forbidden": "不允许的字段",
    "value_error.email": "邮箱格式不正确",
}


def chinese(error: Mapping[str, Any]) -> str:
    """A pydantic validation error in Chinese, for the person at the form."""
    template = _CHINESE.get(str(error.get("type")))
    if template is None:
        return str(error.get("msg", "格式不正确"))
    try:
        return template.format(**(error.get("ctx") or {}))
    except (KeyError, IndexError):
        return str(error.get("msg", "格式不正确"))


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
            {
                "field": _field(tuple(e["loc"])),
                "message": chinese(e),
                "message_en": e["msg"],
                "code": e["type"],
            }
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
