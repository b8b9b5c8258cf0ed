"""The response-target part of ``platform-feedback report``: its CSV rows and text table, from the
plain data ``compliance.as_data`` makes (the same data ``--json`` prints under ``targets``)."""


def csv_rows(data: dict | None) -> list[list]:
    """``section,name,label,value,previous`` rows: the two rates (percent), measured counts,
    breaches in all, by severity and by area, and the weekly rates."""
    if not data:
        return []
    rows = []
    for clock in ("first_response", "resolution"):
        now, before = data[clock], data["previous"][clock]
        rows += [["targets", f"{clock}_met_percent", "", now["percent"], before["percent"]],
                 ["targets", f"{clock}_measured", "", now["measured"], before["measured"]]]
    rows.append(["targets", "breaches", "", data["breaches"], ""])
    rows += [["target_breaches_by_severity", k, "", v, ""] for k, v in data["breaches_by_severity"].items()]
    rows += [["target_breaches_by_area", k, "", v, ""] for k, v in data["breaches_by_area"].items()]
    for week in data["weeks"]:
        rows += [["target_week", week["start"], "first_response_met_percent", week["first_response"], ""],
                 ["target_week", week["start"], "resolution_met_percent", week["resolution"], ""]]
    return rows


def table(data: dict | None) -> str:
    """The text section (empty when targets are off)."""
    if not data:
        return ""

    def pct(r: dict) -> str:
        return "–" if r["percent"] is None else f"{r['percent']:.1f}% of {r['measured']}"

    lines = ["", "Response targets (business time; met / measured)",
             f"  {'':<22}{'now':>16}{'before':>16}"]
    for clock, name in (("first_response", "first response"), ("resolution", "resolution")):
        lines.append(f"  {name:<22}{pct(data[clock]):>16}{pct(data['previous'][clock]):>16}")
    lines.append(f"  breaches              {data['breaches']:>16}")
    if data["breaches"]:
        lines.append("  by severity: " + ", ".join(f"{k} {v}" for k, v in data["breaches_by_severity"].items()))
        lines.append("  by area: " + ", ".join(f"{k} {v}" for k, v in data["breaches_by_area"].items()))
    return "\n".join(lines)
