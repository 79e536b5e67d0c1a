"""Run a native decoder where its crash cannot take the application down.

Issue 2 ("no crash, in the reader, the CLI and the app"): GDCM, the only
permissively licensed decoder here for JPEG Lossless and JPEG-LS, aborts the
whole process (an uncaught C++ exception) on some damaged streams. Such decodes
run in a forked child that sends its result back through a pipe; a child that
dies is reported as :class:`IsolatedCrash`. Where ``fork`` does not exist
(Windows) the function runs in-process.

Issue 14 ("Hardening"): a damaged stream can also make a decoder loop for
ever; a child that has not answered within ``timeout_s`` is killed (SIGKILL)
and reported as :class:`IsolatedTimeout`.
"""

from __future__ import annotations

import os
import pickle
import selectors
import signal
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

__all__ = ["DECODE_TIMEOUT_S", "IsolatedCrash", "IsolatedFailure", "IsolatedTimeout", "run_isolated"]

_Result = TypeVar("_Result")

#: Seconds an isolated decode may take before its child is killed (a 12000² JPEG-LS frame takes a few).
DECODE_TIMEOUT_S = 120.0


class IsolatedCrash(RuntimeError):
    """The isolated function killed its process (signal or abort)."""


class IsolatedTimeout(IsolatedCrash):
    """The isolated function did not answer within ``timeout_s``; its child was killed.

    Attributes:
        timeout_s: the time it was given, in seconds.
    """

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the decoder did not finish within {timeout_s:g} s and was stopped")
        self.timeout_s = timeout_s


class IsolatedFailure(RuntimeError):
    """The isolated function raised; the message is ``"<type>: <text>"`` of the original."""


def run_isolated(function: Callable[[], _Result], *, timeout_s: float = DECODE_TIMEOUT_S) -> _Result:
    """``function()`` in a forked child; its result comes back pickled through a pipe.

    Args:
        function: a zero-argument callable returning a picklable value (e.g. an ndarray).
        timeout_s: seconds to wait for the answer before the child is killed.

    Returns:
        What ``function`` returned.

    Raises:
        IsolatedFailure: ``function`` raised (in the child).
        IsolatedTimeout: no answer within ``timeout_s`` (the child is killed).
        IsolatedCrash: the child died without answering (e.g. ``abort()`` in native code).
    """
    if not hasattr(os, "fork"):
        return function()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into the caller's stack
        _answer_and_exit(function, read_fd=read_fd, write_fd=write_fd)
    os.close(write_fd)
    finished = False
    try:
        payload = _read_until(read_fd, deadline=time.monotonic() + timeout_s)
        if payload is None:
            raise IsolatedTimeout(timeout_s)
        os.waitpid(pid, 0)
        finished = True
    finally:
        os.close(read_fd)
        if not finished:  # timed out or interrupted: the child must not outlive the call
            _kill(pid)
    if not payload:
        raise IsolatedCrash("the decoder crashed")
    kind, value = pickle.loads(payload)  # our own child's answer, never outside data
    if kind == "error":
        raise IsolatedFailure(value)
    return value


def _answer_and_exit(function: Callable[[], object], *, read_fd: int, write_fd: int) -> NoReturn:
    """In the child: pickle ``function()`` (or its exception) into the pipe, then ``_exit``."""
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


def _read_until(read_fd: int, *, deadline: float) -> bytearray | None:
    """Everything written to the pipe until the child closes it, or ``None`` past ``deadline``."""
    payload = bytearray()
    with selectors.DefaultSelector() as selector:  # poll/epoll: no FD_SETSIZE limit as with select()
        selector.register(read_fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return None
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                return payload
            payload += chunk


def _kill(pid: int) -> None:
    """SIGKILL the child and reap it (it may already be gone)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
