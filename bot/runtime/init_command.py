"""``platform-feedback init``: the files a new bot starts from, in the working directory.

Writes ``platform-feedback.yml`` (the commented example team policy, all defaults; fill at least
``hosts`` and ``triage.channel``) and ``.env`` (the settings, empty; mode 0600, it will hold
secrets), never over an existing file, one line on stderr per file saying what it did; then prints
the Slack app manifest on stdout (``platform-feedback init > manifest.yml`` keeps it), for
https://api.slack.com/apps > Create New App > From a manifest. The files come with the package
(``bot.examples``).
"""

import os
import sys
from pathlib import Path

from bot import examples
from bot.runtime.config import DEFAULT_POLICY_FILE

WRITES = [(DEFAULT_POLICY_FILE, examples.POLICY, 0o644, "the team policy: fill hosts and triage.channel"),
          (".env", examples.ENV, 0o600, "the settings: fill SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN)")]


def init(folder: Path) -> int:
    """0 when every file is in place (written now or already there); 2 when one could not be written."""
    code = 0
    for name, source, mode, what in WRITES:
        target = folder / name
        try:
            # O_EXCL: never over a file that is there, even one that appeared a moment ago.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            print(f"platform-feedback: {name} is already there: left as it is", file=sys.stderr)
            continue
        except OSError as exc:
            print(f"platform-feedback: cannot write {target}: {exc.strerror}", file=sys.stderr)
            code = 2
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(examples.text(source))
        print(f"platform-feedback: wrote {name}, {what}", file=sys.stderr)
    print("platform-feedback: the Slack app manifest follows: paste it at https://api.slack.com/apps > Create New App > "
          "From a manifest, with https://example.com replaced by the bot's public URL (or Socket Mode, see its comments)",
          file=sys.stderr)
    sys.stdout.write(examples.text(examples.MANIFEST))
    return code
