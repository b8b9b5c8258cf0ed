"""What the usage tests share: a policy with two capabilities, and a fake CI that signs events."""

import json
import uuid

from bot.policy import Policy
from bot.usage import signing

USAGE_SECRET = "usage-secret-for-tests-0123456789"


def usage_policy(**csat) -> Policy:
    return Policy.model_validate({"usage": {
        "capabilities": [
            {"name": "deploy", "label": "Deploy", "area": "deploys", "csat": {"enabled": True, "sample_every": 1}},
            {"name": "new-service", "area": "environments"},
        ],
        "audience": {"usergroups": ["S0DEVS"]},
        "csat": {"cap_days": 14, "quiet_hours": "19:00-09:00", "min_group": 5, **csat},
    }})


def event(**fields) -> dict:
    return {"id": f"ci-{uuid.uuid4().hex}", "capability": "deploy", "user": "U0DEV0001", **fields}


def signed_event(payload: dict | bytes, *, secret: str = USAGE_SECRET, now: float | None = None) -> tuple[bytes, dict]:
    """The body and headers a CI step sends (``bot.usage.signing``)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return body, signing.headers(secret, body, now)
