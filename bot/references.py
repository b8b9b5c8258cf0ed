"""Human-friendly references: FB-42 is data point 42."""

import re


def format_ref(prefix: str, point_id: int | str) -> str:
    return f"{prefix}-{point_id}"


def parse_ref(prefix: str, text: str) -> int | None:
    m = re.fullmatch(rf"\s*{re.escape(prefix)}-?(\d{{1,12}})\s*", text, flags=re.IGNORECASE)
    return int(m.group(1)) if m else None
