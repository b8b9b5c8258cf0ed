"""Every line ``serve`` writes is one JSON record: a library's ``warnings.warn`` (SQLAlchemy's
SAWarning printed two raw lines among a worker's JSON ones, and a test reading the log as JSON
failed on them) goes through the same handler, redacted."""

import json
import subprocess
import sys

from tests.runtime.test_serve_http import REPO

SCRIPT = """
import warnings
from bot.runtime import logs
logs.configure(secrets=["xoxb-secret-token-value"], json=True)
warnings.warn("Class AnnotatedDelete will not make use of SQL compilation caching (xoxb-secret-token-value)", UserWarning)
"""


def test_a_librarys_warning_is_one_redacted_json_record():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # fails on a raw line
    assert len(records) == 1 and records[0]["level"] == "WARNING" and records[0]["name"] == "py.warnings"
    assert "AnnotatedDelete" in records[0]["message"] and "xoxb-secret-token-value" not in records[0]["message"]
