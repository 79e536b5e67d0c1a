"""Run a native decoder where its crash cannot take the application down.

Issue 2 ("no crash, in the reader, the CLI and the app"): GDCM, the only
permissively licensed decoder here for JPEG Lossless and JPEG-LS, aborts the
whole process (an uncaught C++ exception) on some damaged streams. Such decodes
run in a forked child that sends its result back through a pipe; a child that
dies is reported as :class:`IsolatedCrash`. Where ``fork`` does not exist
(Windows) the function runs in-process.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import TypeVar

__all__ = ["IsolatedCrash", "IsolatedFailure", "run_isolated"]

_Result = TypeVar("_Result")


class IsolatedCrash(RuntimeError):
    """The isolated function killed its process (signal or abort)."""


class IsolatedFailure(RuntimeError):
    """The isolated function raised; the message is ``"<type>: <text>"`` of the original."""


def run_isolated(function: Callable[[], _Result]) -> _Result:
    """``function()`` in a forked child; its result comes back pickled through a pipe.

    Args:
        function: a zero-argument callable returning a picklable value (e.g. an ndarray).

    Returns:
        What ``function`` returned.

    Raises:
        IsolatedFailure: ``function`` raised (in the child).
        IsolatedCrash: the child died without answering (e.g. ``abort()`` in native code).
    """
    if not hasattr(os, "fork"):
        return function()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into the caller's stack
        status = 0
        try:
            os.close(read_fd)
            try:
                payload = pickle.dumps(("ok", function()), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
                payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
        except BaseException:  # noqa: BLE001 - the parent sees an empty answer as a crash
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        payload = pipe.read()
    os.waitpid(pid, 0)
    if not payload:
        raise IsolatedCrash("the decoder crashed")
    kind, value = pickle.loads(payload)  # our own child's answer, never outside data
    if kind == "error":
        raise IsolatedFailure(value)
    return value
