"""Files ``platform-feedback init`` writes or prints, installed with the package: the commented
example team policy, an example ``.env``, and the Slack app manifest. ``platform-feedback.example.yml``
and ``manifest.yml`` are copies of the repository's top-level files (tests/runtime/test_init.py keeps them
identical), so a ``pip install``ed bot has them too."""

from importlib.resources import files

POLICY, ENV, MANIFEST = "platform-feedback.example.yml", "env.example", "manifest.yml"


def text(name: str) -> str:
    """The installed file ``name`` (one of POLICY, ENV, MANIFEST)."""
    return files(__name__).joinpath(name).read_text(encoding="utf-8")


def path(name: str) -> str:
    """Where the installed file ``name`` is on disk, to tell people."""
    return str(files(__name__).joinpath(name))
