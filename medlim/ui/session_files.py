"""Temporary folders that live as long as a browser session, and the janitor that removes them.

Issue 14 ("Zips"): an uploaded archive is unpacked into a folder of its own
session, ``MEDLIM_HOME/tmp/sessions/<server>/<session id>/``, that is removed
once the session has ended (a dataset the user chooses to keep is moved to
``MEDLIM_HOME/datasets`` first). Streamlit has no session-end hook, so the
folders of sessions the server no longer has connected are swept on every page
run and by a background janitor thread (every :data:`JANITOR_INTERVAL_S`), which
also runs :func:`medlim.ui.caching.release_memory`, so memory comes back while
nobody uses the app. ``<server>`` is the process id of the
app server, so folders left by a server that has stopped are swept as a whole
and two servers sharing ``MEDLIM_HOME`` never remove each other's folders.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from medlim.settings import Settings, get_settings

__all__ = [
    "JANITOR_INTERVAL_S",
    "current_session_id",
    "housekeeping",
    "session_is_alive",
    "session_tmp_dir",
    "sessions_root",
    "start_janitor",
    "sweep_ended_sessions",
    "sweep_session_dirs",
]

#: Seconds between two passes of the background janitor.
JANITOR_INTERVAL_S = 15.0

_LOG = logging.getLogger(__name__)
_SESSION_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_SERVER_DIR = re.compile(r"server-(\d+)")


def sessions_root(settings: Settings | None = None) -> Path:
    """``MEDLIM_HOME/tmp/sessions``: one folder per app server process below it."""
    return Path((settings or get_settings()).home) / "tmp" / "sessions"


def _server_dir(settings: Settings | None = None) -> Path:
    return sessions_root(settings) / f"server-{os.getpid()}"


def current_session_id() -> str | None:
    """The Streamlit session id of the running page script, or ``None`` outside one."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    return None if ctx is None else str(ctx.session_id)


def _folder_name(session_id: str) -> str:
    """The session id itself (Streamlit's are UUIDs), else a hash of it (AppTest's has spaces)."""
    if _SESSION_ID.fullmatch(session_id):
        return session_id
    return "h-" + hashlib.sha1(session_id.encode("utf-8")).hexdigest()[:32]


def session_tmp_dir(session_id: str | None = None, *, settings: Settings | None = None) -> Path:
    """The temporary folder of a session (created), removed after the session ends.

    Args:
        session_id: the session; the running script's session when ``None``.
        settings: where ``MEDLIM_HOME`` is; current settings when ``None``.

    Raises:
        RuntimeError: called outside a page run without a session id.
    """
    session_id = session_id or current_session_id()
    if not session_id:
        raise RuntimeError("a session folder is made only while a page runs in a Streamlit session")
    folder = _server_dir(settings) / _folder_name(session_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def session_is_alive(session_id: str) -> bool | None:
    """Whether the app server still has this session connected; ``None`` when it cannot tell.

    ``None`` outside a running server and under AppTest (whose runtime is a mock),
    so nothing is swept there unless a test says which sessions are alive.
    """
    from streamlit import runtime

    if not runtime.exists():
        return None
    alive = runtime.get_instance().is_active_session(session_id)
    return alive if isinstance(alive, bool) else None


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_session_dirs(
    root: Path,
    *,
    is_alive: Callable[[str], bool | None],
    keep: str | None = None,
    pid: int | None = None,
) -> list[Path]:
    """Remove the folders of ended sessions under ``root`` (``MEDLIM_HOME/tmp/sessions``).

    In this server's folder (``server-<pid>``) a session folder goes when
    ``is_alive(session_id)`` is ``False`` (``None``: unknown, kept). Folders of
    other servers go as a whole when their process no longer runs.

    Args:
        root: the sessions root.
        is_alive: says whether a session is still connected.
        keep: the session id whose folder is never removed (the running one).
        pid: this server's process id (``os.getpid()`` when ``None``).

    Returns:
        The folders removed.
    """
    pid = os.getpid() if pid is None else pid
    keep_name = None if keep is None else _folder_name(keep)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for server in root.iterdir():
        match = _SERVER_DIR.fullmatch(server.name)
        if match is None or not server.is_dir():
            continue
        if int(match.group(1)) != pid:
            if not _pid_running(int(match.group(1))):
                shutil.rmtree(server, ignore_errors=True)
                removed.append(server)
            continue
        for folder in server.iterdir():
            if folder.name == keep_name or not folder.is_dir() or is_alive(folder.name) is not False:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def sweep_ended_sessions(*, settings: Settings | None = None) -> list[Path]:
    """Remove the folders of sessions that have ended (cheap: run on every page run)."""
    return sweep_session_dirs(sessions_root(settings), is_alive=session_is_alive, keep=current_session_id())


def housekeeping(*, settings: Settings | None = None) -> list[Path]:
    """The janitor's pass: sweep ended sessions' folders, then release memory (see module doc)."""
    from medlim.ui.caching import release_memory

    removed = sweep_ended_sessions(settings=settings)
    release_memory()
    return removed


_janitor: list[threading.Thread] = []
_janitor_lock = threading.Lock()


def _janitor_loop(interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        try:
            housekeeping()
        except Exception:  # noqa: BLE001 - a janitor that dies silently would leak disk and memory
            _LOG.exception("medlim housekeeping failed; it is retried in %.0f s", interval_s)


def start_janitor(interval_s: float = JANITOR_INTERVAL_S) -> bool:
    """Start the background janitor thread once per process; whether it was started now."""
    with _janitor_lock:
        if _janitor and _janitor[0].is_alive():
            return False
        thread = threading.Thread(target=_janitor_loop, args=(interval_s,), name="medlim-janitor", daemon=True)
        thread.start()
        _janitor[:] = [thread]
        return True
