"""A tracker reader that takes too long (tests/closing/test_reader_process.py): module-level, so the
reader process can run it by reference."""

import time

from bot.trackers import read_delivery as _read


def read_delivery(tracker, body, headers, policy):
    time.sleep(30)
    return _read(tracker, body, headers, policy)
