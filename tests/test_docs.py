"""Issue #25 item 1: the README and docs/*.md are true to the code. Every setting they name exists
(bot/runtime/settings.py) and every setting there is documented in docs/settings.md; every
`platform-feedback` command they name exists; every OAuth scope they name is in manifest.yml (and
none they say the bot lacks is); every metric they name is registered; every link between pages
resolves, anchors included (GitHub's heading slugs)."""

import re
from pathlib import Path

import pytest
import yaml

from bot.runtime import settings as settings_module

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Upper-case names in backticks that are not the bot's settings, and why.
NOT_SETTINGS = {
    "TEST_POSTGRES_URL": "the test suite's PostgreSQL", "REQUIRE_POSTGRES": "CI's", "CI": "CI's",
    "HOME": "the systemd unit's", "FB": "a reference prefix", "GET": "HTTP", "POST": "HTTP",
    "FILE": "a placeholder (`export --csv FILE`)", "SO_REUSEPORT": "a socket option",
}
# Pages another branch writes, linked before they land: a missing one is let pass only while it is missing.
PENDING: dict[str, str] = {}
# Scopes a page names that are not the bot token's, and why.
NOT_BOT_SCOPES = {"chat:write.public": "named as the scope the manifest leaves out on purpose",
                  "connections:write": "the app-level token's scope (Socket Mode), not the bot token's"}


def code_spans(text: str) -> list[str]:
    """Inline `code` and fenced blocks: where pages name settings, commands and scopes."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    return fenced + inline


def named(pattern: str) -> dict[str, set[str]]:
    """Each match of ``pattern`` (group 1) in the pages' code -> the pages naming it."""
    found: dict[str, set[str]] = {}
    for page in PAGES:
        for span in code_spans(page.read_text(encoding="utf-8")):
            for match in re.finditer(pattern, span):
                found.setdefault(match.group(1), set()).add(page.relative_to(REPO).as_posix())
    return found


def setting_names() -> set[str]:
    kinds = [settings_module.DatabaseSettings, settings_module.ReportSettings, settings_module.Settings]
    return {name.upper() for kind in kinds for name in kind.model_fields}


def test_every_setting_named_exists_and_every_setting_is_documented():
    names = named(r"^([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{2,})(?:=.*)?$")
    unknown = {n: pages for n, pages in names.items() if n not in setting_names() and n not in NOT_SETTINGS}
    assert not unknown, f"pages name settings that bot/runtime/settings.py does not have: {unknown}"
    table = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    undocumented = sorted(n for n in setting_names() if f"`{n}`" not in table)
    assert not undocumented, f"settings missing from docs/settings.md's table: {undocumented}"


def cli_commands() -> set[str]:
    from bot.runtime import cli

    parser_help = []

    class Stop(Exception):
        pass

    def capture(self, message=None, file=None):  # argparse's print_help, for --help
        parser_help.append(self.format_help())
        raise Stop

    import argparse

    original = argparse.ArgumentParser.print_help
    argparse.ArgumentParser.print_help = capture
    try:
        cli.main(["--help"])
    except (Stop, SystemExit):
        pass
    finally:
        argparse.ArgumentParser.print_help = original
    [choices] = re.findall(r"\{([a-z,-]+)\}", parser_help[0])[:1]
    return set(choices.split(","))


def test_every_command_named_exists():
    commands = cli_commands()
    assert {"init", "serve", "check", "migrate", "demo", "report", "export"} <= commands
    # `platform-feedback WORD`, also as `.venv/bin/platform-feedback WORD`; not the slash command `/platform-feedback WORD`.
    names = named(r"(?:(?<=bin/)|(?<![/@\w.-]))platform-feedback ([a-z][a-z-]*)")
    unknown = {n: pages for n, pages in names.items() if n not in commands}
    assert not unknown, f"pages name commands that `platform-feedback --help` does not list: {unknown}"


def manifest_scopes() -> set[str]:
    manifest = yaml.safe_load((REPO / "manifest.yml").read_text(encoding="utf-8"))
    return set(manifest["oauth_config"]["scopes"]["bot"])


def test_every_scope_named_is_the_manifests_and_none_it_has_is_said_to_be_missing():
    scopes = manifest_scopes()
    names = named(r"^([a-z]+:[a-z]+(?:\.[a-z]+)?)$")
    unknown = {n: pages for n, pages in names.items() if n not in scopes and n not in NOT_BOT_SCOPES}
    assert not unknown, f"pages name scopes manifest.yml does not ask for: {unknown}"
    for page in PAGES:
        text = " ".join(page.read_text(encoding="utf-8").split())
        for scope in scopes:
            assert f"no `{scope}`" not in text, f"{page.name} says the bot has no {scope}, but manifest.yml asks for it"


def test_every_metric_named_is_registered():
    from bot.runtime.metrics import Metrics

    registered = {m.name for m in Metrics(outbox_stats=lambda: (0, 0.0)).registry.collect()}
    source = "\n".join(p.read_text(encoding="utf-8") for folder in ("bot", "handlers") for p in (REPO / folder).rglob("*.py"))
    names = named(r"^(pf_[a-z_]+?)(?:_total)?(?:\{.*)?$")
    unknown = {n: pages for n, pages in names.items() if n not in registered and f'"{n}"' not in source}
    assert not unknown, f"pages name metrics the bot does not have: {unknown}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (not - or _), spaces to -."""
    text = re.sub(r"[`*_]", lambda m: "_" if m.group(0) == "_" else "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_link_resolves(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() and file.is_relative_to(REPO) and file.relative_to(REPO).as_posix() in PENDING:
            continue
        if not file.exists():
            broken.append(f"{target}: no {file.relative_to(REPO) if file.is_relative_to(REPO) else file}")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: {broken}"


def test_the_readme_is_short_with_a_contents_list():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert "## Contents" in text
    order = [text.index(h) for h in ("## Quick start", "## Try it", "## Set it up", "## Run it in production", "## Reference")]
    assert order == sorted(order)
    assert text.index("Socket Mode") < text.index("HTTP behind HTTPS")
