"""Test instrumentation, on ``PYTHONPATH`` only in tests that ask for it: a process importing
``bot.runtime.app`` while the file named by ``PF_TEST_SLOW_APP`` exists waits there for
``PF_TEST_SLOW_APP_SECONDS`` (default 30). A worker started after the test creates the file builds
its app that much later: a slow start (a loaded machine, a cold disk) made long enough to see.
While it waits, ``<PF_TEST_SLOW_APP>.<pid>`` exists."""

import os
import sys
import time

FLAG = os.environ.get("PF_TEST_SLOW_APP", "")


class _SlowApp:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "bot.runtime.app" and FLAG and os.path.exists(FLAG):
            waiting = f"{FLAG}.{os.getpid()}"
            open(waiting, "w").close()
            try:
                time.sleep(float(os.environ.get("PF_TEST_SLOW_APP_SECONDS", "30")))
            finally:
                os.unlink(waiting)
        return None  # the ordinary finders import it


if FLAG:
    sys.meta_path.insert(0, _SlowApp())
