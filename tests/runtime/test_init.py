"""Issue #25 item 3: `platform-feedback init` writes the example policy and .env where it runs,
never over a file, and prints the manifest; the files it uses are installed with the package and
stay the same as the repository's top-level ones."""

import stat
from pathlib import Path

import yaml

from bot import examples
from bot.policy import Policy
from bot.runtime.config import load_policy
from tests.runtime.test_config_cli import run_cli

REPO = Path(__file__).resolve().parents[2]


def test_the_installed_copies_are_the_repositorys_files():
    for name in (examples.POLICY, examples.MANIFEST):
        assert examples.text(name) == (REPO / name).read_text(encoding="utf-8"), (
            f"bot/examples/{name} differs from ./{name}: copy ./{name} over it")


def test_the_package_ships_them():
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"bot.examples" = ["*.yml", "env.example"]' in pyproject


def test_init_writes_the_policy_and_env_and_prints_the_manifest(tmp_path):
    result = run_cli(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout) == yaml.safe_load((REPO / "manifest.yml").read_text(encoding="utf-8"))
    lines = result.stderr.splitlines()
    assert lines[0].startswith("platform-feedback: wrote platform-feedback.yml, ")
    assert lines[1].startswith("platform-feedback: wrote .env, ")
    assert load_policy(tmp_path / "platform-feedback.yml") == Policy()  # the defaults, commented
    env = (tmp_path / ".env").read_text(encoding="utf-8")
    assert "SLACK_BOT_TOKEN=\n" in env and "SLACK_SIGNING_SECRET=\n" in env
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600  # it will hold secrets
    # The .env as written: serve names every setting still to fill, in one line.
    serve = run_cli(tmp_path, "serve")
    [line] = serve.stderr.splitlines()
    assert serve.returncode == 2 and "SLACK_BOT_TOKEN is not set" in line and "SLACK_SIGNING_SECRET is not set" in line


def test_init_never_writes_over_a_file(tmp_path):
    (tmp_path / "platform-feedback.yml").write_text("hosts: {users: [U0MINE0001]}\n", encoding="utf-8")
    result = run_cli(tmp_path, "init")
    assert result.returncode == 0
    assert "platform-feedback: platform-feedback.yml is already there: left as it is" in result.stderr.splitlines()
    assert (tmp_path / "platform-feedback.yml").read_text(encoding="utf-8") == "hosts: {users: [U0MINE0001]}\n"
    assert (tmp_path / ".env").exists()


def test_check_without_a_policy_says_how_to_get_the_example(tmp_path, fake_slack):
    from tests.runtime.test_running import slack_env

    result = run_cli(tmp_path, "check", **slack_env(tmp_path, fake_slack))
    [line] = [line for line in result.stdout.splitlines() if "no policy file" in line]
    assert "run `platform-feedback init`" in line and examples.path(examples.POLICY) in line
    assert Path(examples.path(examples.POLICY)).is_file()
