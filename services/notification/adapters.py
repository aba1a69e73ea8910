"""Notification channels. The webhook channel posts the CloudEvent with an HMAC signature."""

import time

import httpx

from shared.events import CE_CONTENT_TYPE

from .domain import WebhookSubscription, signature


class DeliveryError(Exception):
    """The receiver did not take the delivery."""


class WebhookChannel:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(self, subscription: WebhookSubscription, delivery_id: str, body: bytes) -> None:
        headers = {
            "Content-Type": CE_CONTENT_TYPE,
            # Receivers dedupe on this id: the same delivery always carries the same one.
            "X-Minyi-Delivery": delivery_id,
            "X-Minyi-Signature": signature(subscription.secret, int(time.time()), body),
        }
        try:
            response = await self.client.post(subscription.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise DeliveryError(f"HTTP {response.status_code}")
