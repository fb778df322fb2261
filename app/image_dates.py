"""When an image was made, as its settings say: the gallery orders imported pictures by it, and the pane shows it."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

# How far past its file's time (or now) a date may be and still be taken as the date a picture was made: a day of
# clock skew between machines.
_SKEW_S = 86400


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


def import_date(settings: dict[str, Any], file_time: float) -> float:
    """When the image was made, for its row's ``created`` (the gallery's order) as the import of a picture found in
    the images folder takes it: the date its settings give, else its file's time ``file_time``. A gallery copied
    without its file times (cp without -p, a cloud folder's download) was listed in the order it was copied, its
    file times all of that day. A date without a time zone is never later than the file's time (``made_at``)."""
    when = made_at(settings.get("created"), file_time)
    # a date past the file's own (beyond a day of clock skew) is no date it was made: a damaged or foreign file's
    late = when is None or when.timestamp() > max(file_time, time.time()) + _SKEW_S
    return file_time if late else when.timestamp()
