"""When an image was made, as its settings say: the gallery orders imported pictures by it, and the pane shows it."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def made_at(created: Any) -> datetime | None:
    """The date the settings' ``created`` value gives, with its time zone; None when there is none, or it is no
    ISO 8601 date (another program's format, a damaged file). The engine writes UTC with its offset; the
    worker's fallback writes local time without one, taken as the local time it is."""
    if not isinstance(created, str) or not created.strip():
        return None
    try:
        when = datetime.fromisoformat(created.strip())
        return when if when.tzinfo is not None else when.astimezone()
    except (ValueError, OverflowError, OSError):  # OverflowError, OSError: a year the system's clock cannot place
        return None
