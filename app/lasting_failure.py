"""A failure that may last while it is tried again every few seconds (the images folder away, a look at it
failing, the gallery database locked): logged once when it starts, once when it changes kind, and once when it
ends, instead of a line (or a traceback) at each try."""

from __future__ import annotations

import logging


class LastingFailure:
    """The failure under way, if any, of something tried again and again (``failed``, ``ended``)."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self.kind: str | None = None  # the failure under way: None while the tries succeed
        self._end = ""  # what its end says

    def failed(self, kind: str, said: str, end: str, exc_info: BaseException | bool = False) -> None:
        """A try failed with the failure ``kind``: ``said`` (a warning, with ``exc_info``'s traceback) when it is no
        longer the failure under way, nothing when it is; ``end`` is logged once it ends."""
        if kind == self.kind:
            return
        self.kind, self._end = kind, end
        self._log.warning(said, exc_info=exc_info)

    def ended(self) -> None:
        """A try succeeded: the end of the failure under way logged, if there was one."""
        if self.kind is not None:
            self.kind = None
            self._log.info(self._end)
