"""Wait for Jupyter kernel messages in short slices, so that a missed wake-up costs a second, not a cell's
time limit.

Used where this project executes notebooks: the book build (:mod:`rladder_nb.bookbuild`) and the tests
that run chapters. Not needed in JupyterLab.

**The problem.** Now and then, on a 2-core machine, a chapter whose cells each take a second or two ran
for exactly the client's per-cell time limit plus its normal run time (246 s = 240 s + 6 s, twice; by
the kernel's own timestamps every reply had been sent within 2.1 s). nbclient waits for a cell's reply
with *one* call, ``await shell_channel.get_msg(timeout=<the cell's time limit>)``. In jupyter_client that
call is an asyncio ``poll`` of a ZeroMQ socket, which pyzmq wakes through the socket's edge-triggered
file descriptor; when that wake-up is missed, the poll sleeps until its timeout and then makes one last
non-blocking check, which finds the reply that had been waiting all along. The cell "succeeds", only
late. (A wake-up lost in the same way on the kernel's side is a known ipykernel issue; this is the
client's side of the same kind of race, as far as we can tell: we have not caught it in the act.)

**The fix.** :func:`install` makes every asynchronous channel of jupyter_client wait in slices of at most
:data:`SLICE_SECONDS`: each slice ends with pyzmq's non-blocking check, so a reply that is already there
is read within a slice. The caller's timeout is kept: the wait raises ``queue.Empty`` at the same
deadline as before.
"""
from __future__ import annotations

import functools
import time
from queue import Empty

SLICE_SECONDS = 1.0


def sliced(get_msg, slice_seconds: float = SLICE_SECONDS):
    """Wrap an ``async get_msg(self, timeout=None)`` so that it waits in slices of ``slice_seconds``.

    The wrapper returns the first message any slice receives and raises ``queue.Empty`` once ``timeout``
    seconds (``None``: no limit) have passed without one, as the wrapped method does.
    """
    if not slice_seconds > 0:
        raise ValueError(f"slice_seconds must be > 0, got {slice_seconds!r}")

    @functools.wraps(get_msg)
    async def get_msg_in_slices(self, timeout=None):
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be None or >= 0 seconds, got {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await get_msg(self, timeout=slice_seconds if left is None else min(slice_seconds, left))
            except Empty:
                if left is not None and left <= slice_seconds:
                    raise

    get_msg_in_slices.__wrapped_in_slices__ = True
    return get_msg_in_slices


def install(slice_seconds: float = SLICE_SECONDS) -> bool:
    """Make ``jupyter_client``'s asynchronous channels wait in slices (see the module docstring).

    Idempotent; returns True if this call installed it, False if it was in place already.
    """
    from jupyter_client.channels import AsyncZMQSocketChannel

    if getattr(AsyncZMQSocketChannel.get_msg, "__wrapped_in_slices__", False):
        return False
    AsyncZMQSocketChannel.get_msg = sliced(AsyncZMQSocketChannel.get_msg, slice_seconds)
    return True
