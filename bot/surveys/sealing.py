"""Sealed answers: while a run is open, each person's answers are kept under a pseudonym (``slot``),
encrypted (AES-256-GCM, the ``cryptography`` package) under a key that is never written anywhere.

- The process key comes from the bot's own secret (the Slack signing secret, or the app-level
  token in Socket Mode): every instance and every restart derives the same one.
- A run's key is HMAC-SHA256(process key, "survey-run:<run id>:<run nonce>"); the nonce is random,
  kept on the run while it is open and erased at close.
- The plaintext is padded to a multiple of ``PAD`` bytes, so a sealed blob's length says nothing
  about the score chosen (and little about a comment's length).

Nothing that links a person to an answer, or to having answered, is ever stored in the clear:
while the run is open the database holds (pseudonym, ciphertext), the pseudonym being
HMAC(run key, user id) (``slot``), and after it closed (answer, no person). See the
README's "Survey anonymity" for who can see what.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PAD = 512  # bytes: sealed plaintexts are padded to a multiple of this
NONCE_BYTES = 12  # AES-GCM's standard nonce (NIST SP 800-38D)


class Keys:
    """Derives run keys from the process key. ``material``: the bot's secret (any non-empty
    string); empty means a random key for this process only (then answers cannot be changed
    after a restart, and nothing else breaks)."""

    def __init__(self, material: str | bytes = ""):
        raw = material.encode("utf-8") if isinstance(material, str) else material
        self._key = hashlib.sha256(b"platform-feedback survey keys\0" + raw).digest() if raw else secrets.token_bytes(32)

    @classmethod
    def from_settings(cls, settings) -> "Keys":
        return cls(getattr(settings, "slack_signing_secret", "") or getattr(settings, "slack_app_token", "") or "")

    def run_key(self, run_id: int, nonce: str) -> bytes:
        return hmac.new(self._key, f"survey-run:{run_id}:{nonce}".encode("utf-8"), hashlib.sha256).digest()

    def slot(self, run_id: int, nonce: str, user_id: str) -> str:
        """The pseudonym (64 hex) a person's sealed answers are stored under in a run: nothing
        without the run key (so the bot's secret) links it to them."""
        return hmac.new(self.run_key(run_id, nonce), f"slot:{user_id}".encode("utf-8"), hashlib.sha256).hexdigest()

    def seal(self, run_id: int, nonce: str, user_id: str, content: dict) -> str:
        """``content`` (JSON-able) -> base64 text, bound to the run and the person (associated data)."""
        plain = json.dumps(content, separators=(",", ":"), sort_keys=True).encode("utf-8")
        plain += b" " * (-len(plain) % PAD or (PAD if not plain else 0))
        iv = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.run_key(run_id, nonce)).encrypt(iv, plain, f"{run_id}:{user_id}".encode("utf-8"))
        return base64.b64encode(iv + sealed).decode("ascii")

    def open(self, run_id: int, nonce: str, user_id: str, blob: str) -> dict | None:
        """The content sealed by ``seal``; None if it cannot be opened (another process key, or
        not this run's or this person's)."""
        try:
            raw = base64.b64decode(blob, validate=True)
            plain = AESGCM(self.run_key(run_id, nonce)).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"{run_id}:{user_id}".encode("utf-8"))
            content = json.loads(plain)
        except (InvalidTag, ValueError, TypeError):
            return None
        return content if isinstance(content, dict) else None
