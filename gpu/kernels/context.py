"""pycuda context and stream plumbing shared with PyTorch.

PyTorch runs on each device's *primary* context; pycuda retains that same primary context here, so
device pointers and modules are shared. The context is pushed only around pycuda calls (``active``)
and popped again: nothing is left on any thread's context stack, which keeps every host thread (the
GUI generates off the main thread) correct and lets pycuda shut down cleanly at exit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pycuda.driver as drv
    import torch

_primary: dict[int, drv.Context] = {}
_streams: dict[tuple[int, int], drv.Stream] = {}  # by (device index, lane)
_lock = threading.RLock()


def _primary_context(device_index: int) -> drv.Context:
    with _lock:
        if device_index not in _primary:
            import pycuda.driver as drv
            import torch

            torch.cuda.init()  # the runtime creates the primary context if nobody did yet
            drv.init()
            _primary[device_index] = drv.Device(device_index).retain_primary_context()
        return _primary[device_index]


@contextlib.contextmanager
def active(device_index: int) -> Iterator[None]:
    """Make the primary context of ``device_index`` current for pycuda calls inside the block."""
    import pycuda.driver as drv

    _primary_context(device_index).push()
    try:
        yield
    finally:
        drv.Context.pop()


def pycuda_stream(device_index: int, lane: int = 0) -> drv.Stream:
    """A pycuda stream owned by this package for ``device_index`` (created once per lane). Lane 0 is the
    main one; other lanes carry work that may run concurrently with it (e.g. FLUX's text stream)."""
    with _lock:
        if (device_index, lane) not in _streams:
            import pycuda.driver as drv

            with active(device_index):
                _streams[device_index, lane] = drv.Stream()
        return _streams[device_index, lane]


def package_stream(device_index: int, handle: int) -> drv.Stream | None:
    """The package's pycuda stream with this raw handle (any lane created so far), or None."""
    with _lock:
        for (idx, _lane), stream in _streams.items():
            if idx == device_index and stream.handle == handle:
                return stream
    return None


def torch_stream_for_kernels(device_index: int, lane: int = 0) -> torch.cuda.ExternalStream:
    """``torch.cuda.ExternalStream`` over the package's pycuda stream of ``lane``. Running torch on it
    (``with torch.cuda.stream(torch_stream_for_kernels(i)):``) lets kernels launch with no event
    fork/join, the fastest path; see ``gpu.kernels.launch.launch_stream``."""
    import torch

    stream = pycuda_stream(device_index, lane)
    return torch.cuda.ExternalStream(stream.handle, device=torch.device("cuda", device_index))
