"""One thread for every call to an environment that is bound to its thread.

Locally, a Gymnasium environment is called from one thread: the caller's. A server
calls a session's environment from the thread of whichever request arrives (a stream's
handler for its steps, any pool thread for a unary Render, Call or attribute access),
which breaks environments holding a thread-bound resource: MuJoCo makes its off-screen
OpenGL context current once, in the thread that creates its viewer, and renders from
another thread crash the process (docs/peers.md, finding A4); pygame's display is
bound alike.

:class:`EnvThread` runs such a session's calls, its construction and ``close()``
included, on one thread of its own. Which sessions need one is decided by
:func:`needs_own_thread`: those created with a render mode (the rendering back-ends
are what binds), and those of environments whose metadata says
``"gymrpc.thread_bound": True``. A session whose environment turns out to render
without the option (its registration or constructor chose the render mode) gets a
thread once it is built (:func:`renders`): the back-ends bind at the first render,
not at construction, so all the calls that matter still run on one thread. Other
sessions are called directly, since handing a step to another thread costs two thread
wake-ups per step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, ParamSpec, TypeVar

__all__ = ["THREAD_BOUND", "EnvThread", "needs_own_thread", "renders"]

#: Metadata key by which an environment asks for one thread for all its calls.
THREAD_BOUND: Final = "gymrpc.thread_bound"

_P = ParamSpec("_P")
_T = TypeVar("_T")


def needs_own_thread(metadata: Mapping[str, Any], options: Mapping[str, Any]) -> bool:
    """Whether a session with these environment metadata and options needs an EnvThread.

    Example:
        >>> needs_own_thread({"render_modes": ["rgb_array"]}, {"render_mode": "rgb_array"})
        True
        >>> needs_own_thread({"render_modes": ["rgb_array"]}, {})
        False
        >>> needs_own_thread({THREAD_BOUND: True}, {})
        True
    """
    return options.get("render_mode") is not None or bool(metadata.get(THREAD_BOUND))


def renders(env: Any) -> bool:
    """Whether a built environment renders (has a render mode), whatever chose it."""
    return getattr(env, "render_mode", None) is not None


class EnvThread:
    """A thread that runs every call to one session's environment, one at a time.

    Exceptions raised by a call are raised again in the caller, unchanged, so code
    around the call handles them as if it had made the call itself.

    Args:
        name: The thread's name (in logs and profilers).
    """

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def run(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Call ``function(*args, **kwargs)`` on the thread and wait for its result."""
        return self._executor.submit(function, *args, **kwargs).result()

    def close(self) -> None:
        """Let the thread finish the call in progress, if any, and end."""
        self._executor.shutdown(wait=True)
