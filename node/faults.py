"""Crash points: named places where the crash-safety tests kill the process.

With ``TRUSTSPACE_CRASH_AT=NAME`` (or ``NAME@N``: the N-th time it is reached) in a node's
or a command's environment, the process sends itself SIGKILL on reaching that point — no
cleanup, no flush, exactly as ``kill -9`` would. Points sit right after a state change
commits and right before something is sent, where a crash is most likely to lose or
duplicate something. Without the variable a crash point costs one comparison.
"""

from __future__ import annotations

import os
import signal
import threading

_SPEC = os.environ.get("TRUSTSPACE_CRASH_AT", "")
_NAME, _, _NTH = _SPEC.partition("@")
_COUNT = int(_NTH) if _NTH.isdigit() else 1
_reached = 0
_lock = threading.Lock()


def crash_point(name: str) -> None:
    global _reached
    if not _SPEC or name != _NAME:
        return
    with _lock:
        _reached += 1
        if _reached >= _COUNT:
            os.kill(os.getpid(), signal.SIGKILL)
