"""Follow-up adapters: signed feedback links and case queries."""

import base64
import hashlib
import hmac
from datetime import datetime

from pymongo.asynchronous.collection import AsyncCollection

from shared.store import Document

from .domain import Case, CaseError


class FeedbackTokens:
    """Signed, single-purpose links for the submitter: ``<case>.<round>.<expiry>`` + HMAC.
    Single use comes from the case: a round can be rated once."""

    def __init__(self, secret: str, public_url: str) -> None:
        self.key = hashlib.sha256(f"feedback:{secret}".encode()).digest()
        self.public_url = public_url.rstrip("/")

    def _sign(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()

    def url(self, case_id: str, feedback_round: int, expires_at: datetime) -> str:
        payload = f"{case_id}.{feedback_round}.{int(expires_at.timestamp())}"
        encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{self.public_url}/feedback/{encoded}.{self._sign(payload)}"

    def verify(self, token: str, now: datetime) -> tuple[str, int]:
        """The case id and feedback round the token is for; CaseError if forged or expired."""
        try:
            encoded, signature = token.rsplit(".", 1)
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            case_id, feedback_round, expires = payload.split(".")
            valid = hmac.compare_digest(signature, self._sign(payload))
            round_no, expiry = int(feedback_round), int(expires)
        except ValueError:
            raise CaseError(403, "The feedback link is not valid.") from None
        if not valid:
            raise CaseError(403, "The feedback link is not valid.")
        if now.timestamp() > expiry:
            raise CaseError(410, "The feedback link has expired.")
        return case_id, round_no


async def department_inbox(cases: AsyncCollection[Document], department: str) -> list[Case]:
    """Cases assigned to a department, newest first."""
    cursor = cases.find({f"assignments.{department}": {"$exists": True}})
    found = [Case.model_validate(doc) async for doc in cursor]
    return sorted(found, key=lambda c: c.opened_at, reverse=True)
