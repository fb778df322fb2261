"""pycuda context and stream plumbing shared with PyTorch.

PyTorch runs on each device's *primary* context; pycuda retains the same primary context here, so
device pointers and modules are shared. A CUDA context is current per host thread, so every thread
that launches makes it current once (the GUI runs generation off the main thread).
"""

from __future__ import annotations

import threading

_local = threading.local()
_primary: dict[int, object] = {}
_streams: dict[int, object] = {}
_init_lock = threading.Lock()


def make_current(device_index: int) -> None:
    """Make the primary context of ``device_index`` current on this thread (idempotent)."""
    current = getattr(_local, "device", None)
    if current == device_index:
        return
    import pycuda.driver as drv
    import torch

    torch.cuda.init()  # creates the primary context through the runtime if nobody did yet
    with _init_lock:
        if device_index not in _primary:
            drv.init()
            _primary[device_index] = drv.Device(device_index).retain_primary_context()
    if current is not None:
        drv.Context.pop()
    _primary[device_index].push()
    _local.device = device_index


def pycuda_stream(device_index: int):
    """A pycuda stream owned by this package for ``device_index`` (created once)."""
    make_current(device_index)
    with _init_lock:
        if device_index not in _streams:
            import pycuda.driver as drv

            _streams[device_index] = drv.Stream()
        return _streams[device_index]


def torch_stream_for_kernels(device_index: int):
    """``torch.cuda.ExternalStream`` over the package's pycuda stream. Running torch on it
    (``with torch.cuda.stream(torch_stream_for_kernels(i)):``) lets kernels launch with no event
    fork/join, the fastest path; see ``gpu.kernels.launch.launch_stream``."""
    import torch

    stream = pycuda_stream(device_index)
    return torch.cuda.ExternalStream(stream.handle, device=torch.device("cuda", device_index))
