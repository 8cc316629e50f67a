"""rladder_nb.kernelpoll: waiting for kernel messages in slices keeps the caller's timeout and reads a
message that arrived while a wake-up was missed within one slice."""
import asyncio
import time
from queue import Empty

import pytest

from rladder_nb import kernelpoll


class MissedWakeUpChannel:
    """A channel like jupyter_client's asynchronous one, whose wake-up is always missed: a message that
    arrives while ``get_msg`` waits is seen only when that wait ends (by its timeout), as pyzmq's poll
    does when its edge-triggered wake-up is lost; a wait that starts after the arrival sees it at once."""

    def __init__(self, arrives_after=None):
        self.t0 = time.monotonic()
        self.arrives_at = None if arrives_after is None else self.t0 + arrives_after
        self.calls = []

    def _ready(self):
        return self.arrives_at is not None and time.monotonic() >= self.arrives_at

    async def get_msg(self, timeout=None):
        self.calls.append(timeout)
        if self._ready():
            return {"content": "reply"}
        await asyncio.sleep(timeout if timeout is not None else 3600)
        if self._ready():
            return {"content": "reply"}
        raise Empty


def _run(channel, get_msg, timeout):
    start = time.monotonic()
    try:
        result = asyncio.run(get_msg(channel, timeout=timeout))
    except Empty:
        result = Empty
    return result, time.monotonic() - start


def test_the_plain_wait_lasts_its_whole_timeout():
    """The failure this module fixes, in the model above: the reply waits for the whole time limit."""
    result, seconds = _run(MissedWakeUpChannel(arrives_after=0.05), MissedWakeUpChannel.get_msg, timeout=1.5)
    assert result == {"content": "reply"} and seconds >= 1.4


def test_sliced_wait_reads_the_message_within_a_slice():
    get_msg = kernelpoll.sliced(MissedWakeUpChannel.get_msg, slice_seconds=0.1)
    channel = MissedWakeUpChannel(arrives_after=0.05)
    result, seconds = _run(channel, get_msg, timeout=3.0)
    assert result == {"content": "reply"} and seconds < 1.0  # the plain wait: 3 s
    assert all(t <= 0.1 for t in channel.calls)


def test_sliced_wait_without_a_limit_also_slices():
    get_msg = kernelpoll.sliced(MissedWakeUpChannel.get_msg, slice_seconds=0.1)
    channel = MissedWakeUpChannel(arrives_after=0.25)
    result, seconds = _run(channel, get_msg, timeout=None)
    assert result == {"content": "reply"} and 0.2 < seconds < 1.5
    assert len(channel.calls) >= 3


@pytest.mark.parametrize("timeout", [0, 0.05, 0.35])
def test_sliced_wait_keeps_the_callers_deadline(timeout):
    get_msg = kernelpoll.sliced(MissedWakeUpChannel.get_msg, slice_seconds=0.1)
    result, seconds = _run(MissedWakeUpChannel(arrives_after=None), get_msg, timeout=timeout)
    assert result is Empty
    assert timeout - 0.01 <= seconds < timeout + 0.5


def test_bad_arguments():
    with pytest.raises(ValueError, match="slice_seconds must be > 0"):
        kernelpoll.sliced(MissedWakeUpChannel.get_msg, slice_seconds=0)
    get_msg = kernelpoll.sliced(MissedWakeUpChannel.get_msg, slice_seconds=0.1)
    with pytest.raises(ValueError, match="timeout must be None or >= 0"):
        asyncio.run(get_msg(MissedWakeUpChannel(), timeout=-1))


def test_install_patches_jupyter_clients_async_channel_once(monkeypatch):
    from jupyter_client.channels import AsyncZMQSocketChannel

    original = AsyncZMQSocketChannel.get_msg
    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", getattr(original, "__wrapped__", original))
    assert kernelpoll.install() is True
    patched = AsyncZMQSocketChannel.get_msg
    assert patched.__wrapped_in_slices__ and patched.__wrapped__ is getattr(original, "__wrapped__", original)
    assert kernelpoll.install() is False and AsyncZMQSocketChannel.get_msg is patched
