"""The serving process's interpreter, set so that an ack does not wait behind other work in it.

Everything heavy runs in worker threads (database calls, the dashboard's rendering) or in the chart
process; what was left to stall the event loop was the interpreter itself (issue #15)."""

import gc
import logging
import sys

log = logging.getLogger(__name__)

# How long a worker thread keeps the GIL while the event loop's thread asks for it: CPython's
# default is 5 ms (sys.getswitchinterval), paid again each time the loop comes back from waiting
# on a socket, so an ack that arrived during a dashboard load's rendering or a report's ORM work
# waited in 5 ms steps.
SWITCH_SECONDS = 0.0005


def set_for_serving() -> None:
    """Call once in each serving process, when its app is built and before it serves.

    - The switch interval down to ``SWITCH_SECONDS``.
    - Collect once, then move every object alive now (the app and what it imported: ~150,000
      objects) into the collector's permanent generation (``gc.freeze``, Python >= 3.7), so later
      full (generation 2) collections no longer walk them: each such walk stopped the process for
      ~45 ms on the 2-CPU bench machine (``gc.collect()`` right after start; 0.0 ms once frozen).
      Frozen objects are never collected as cyclic garbage: freezing again later would keep what
      died meanwhile, hence once."""
    sys.setswitchinterval(SWITCH_SECONDS)
    gc.collect()
    gc.freeze()
    log.debug("serving interpreter: %d objects of the start kept out of garbage collection, thread switch interval %g ms",
             gc.get_freeze_count(), sys.getswitchinterval() * 1000)
