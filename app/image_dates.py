"""When an image was made, as its settings say: the gallery orders imported pictures by it, and the pane shows it."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any


def made_at(created: Any, file_time: float | None = None) -> datetime | None:
    """The date the settings' ``created`` value gives, with its time zone; None when there is none, or it is no
    ISO 8601 date (another program's format, a damaged file). The engine writes UTC with its offset.

    A date without one (the worker's fallback, another program's) is the clock of the machine that wrote it, in a
    zone not known: taken as this machine's local time, but never later than ``file_time`` (the file's time, where
    known: a picture is made before its file is written) nor than now. Made in another zone, it is then off by the
    zones' difference at most, and never in the future: read as local time only, a picture made a minute ago 23 h
    east of here was dated tomorrow (listed above every image made since). A picture made west of here, or whose
    file was copied later, keeps its local reading: nothing tells its zone from a copy's file time."""
    if not isinstance(created, str) or not created.strip():
        return None
    try:
        when = datetime.fromisoformat(created.strip())
        if when.tzinfo is not None:
            return when
        when = when.astimezone()
        latest = time.time() if file_time is None else min(file_time, time.time())
        return when if when.timestamp() <= latest else datetime.fromtimestamp(latest, timezone.utc).astimezone()
    except (ValueError, OverflowError, OSError):  # OverflowError, OSError: a year the system's clock cannot place
        return None
