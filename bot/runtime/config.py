"""Reading the team policy from its one YAML file into ``bot.policy.Policy``; the environment's
settings are ``bot.runtime.settings``.

A bad value stops start-up with ``ConfigError``: one line that names the setting and what to do.
"""

from pathlib import Path

import yaml
from pydantic import ValidationError

from bot.policy import Policy
from bot.runtime.config_errors import policy_problems, yaml_problem
from bot.runtime.settings import ConfigError

DEFAULT_POLICY_FILE = "platform-feedback.yml"


def load_policy(path: Path | None) -> Policy:
    """Read the team policy. No file named and none in the working directory: the defaults."""
    if path is None:
        default = Path(DEFAULT_POLICY_FILE)
        if not default.exists():
            return Policy()
        path = default
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"CONFIG_FILE {path}: cannot read it ({exc.strerror}).") from None
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_problem(path, exc)) from None
    try:
        return Policy.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(policy_problems(path, Policy, exc, raw)) from None
