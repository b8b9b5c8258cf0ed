"""How a bad setting or team policy is told to the operator: every problem at once, on one line,
with the key path, a "did you mean" for a misspelt key and the YAML parser's reason."""

import difflib

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings


def settings_problems(kind: type[BaseSettings], exc: ValidationError) -> str:
    """Every environment problem of ``exc``, joined with "; " (one line)."""
    lines = []
    for err in exc.errors():
        if not err["loc"]:  # a model-level rule: its message already names the settings
            lines.append(str(err["msg"]).removeprefix("Value error, "))
            continue
        name = str(err["loc"][0])
        field = kind.model_fields.get(name)
        hint = field.description if field else ""
        if err["type"] == "missing":
            lines.append(f"{name.upper()} is not set: set it to {hint}")
        elif (msg := str(err["msg"]).removeprefix("Value error, ")).startswith(("is the placeholder", "has spaces")):
            lines.append(f"{name.upper()} {msg}")  # says itself what is wrong and what to do
        else:
            lines.append(f"{name.upper()} is invalid ({msg}): set it to {hint}")
    return "; ".join(lines) + "."


def yaml_problem(path, exc: yaml.YAMLError) -> str:
    """``not valid YAML at line N: <the parser's reason>`` (PyYAML's MarkedYAMLError: problem_mark is 0-based)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}" if mark else ""
    reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"CONFIG_FILE {path}: not valid YAML{where}: {' '.join(str(reason).split())}."


def policy_problems(path, model: type[BaseModel], exc: ValidationError, raw) -> str:
    """Every problem of the policy file, ``CONFIG_FILE path: key.path: what; other.key: what.``"""
    lines = []
    for err in exc.errors():
        where = _where(err["loc"], raw) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key{_did_you_mean(model, err['loc'])}")
        else:
            lines.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    count = f"{len(lines)} problems: " if len(lines) > 1 else ""
    return f"CONFIG_FILE {path}: {count}{'; '.join(lines)}."


def _did_you_mean(model: type[BaseModel], loc: tuple) -> str:
    """The closest known key at the unknown key's level (difflib ratio >= 0.6), if any."""
    parent = _model_at(model, loc[:-1])
    if parent is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class found by following ``loc`` (field names; list indices skipped) from ``model``."""
    import typing

    current = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        candidates = [field.annotation]
        found = None
        while candidates:  # unwrap list[...], Annotated[...], X | None down to a model class
            t = candidates.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                found = t
                break
            candidates.extend(typing.get_args(t))
        if found is None:
            return None
        current = found
    return current


def _where(loc: tuple, raw) -> str:
    """The error's key path; a survey is named by its name (``surveys[pulse].schedule``), not its index."""
    parts = [str(p) for p in loc]
    if len(loc) >= 2 and loc[0] == "surveys" and isinstance(loc[1], int) and isinstance(raw, dict):
        surveys = raw.get("surveys")
        item = surveys[loc[1]] if isinstance(surveys, list) and loc[1] < len(surveys) else None
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name:
            parts[:2] = [f"surveys[{name}]"]
    return ".".join(parts)
