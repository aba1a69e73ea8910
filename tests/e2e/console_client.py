"""A person using the console over HTTP, as the browser app does: session cookie (Secure, so
sent by hand here: httpx keeps Secure cookies for https only), CSRF header on unsafe calls."""

from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import httpx

from services.console.api import COOKIE


@dataclass
class Person:
    http: httpx.AsyncClient
    base: str
    cookie: str = ""
    csrf: str = ""
    me: dict[str, Any] = field(default_factory=dict)

    async def login(self, login: str, password: str) -> httpx.Response:
        response = await self.http.post(
            f"{self.base}/console/login", json={"login": login, "password": password}
        )
        if response.status_code == 200:
            jar = SimpleCookie(response.headers["set-cookie"])
            self.cookie = jar[COOKIE].value
            self.me = response.json()
            self.csrf = self.me["csrf"]
        return response

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Cookie": f"{COOKIE}={self.cookie}"} if self.cookie else {}
        if method != "GET" and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        headers.update(kwargs.pop("headers", {}))
        return await self.http.request(method, f"{self.base}{path}", headers=headers, **kwargs)
