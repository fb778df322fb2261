"""Local files as ``file:`` URLs and back, whatever the bytes of their names. On Linux a file name is bytes, not
always UTF-8 (``caf\\xe9.png``, made in Latin-1): the app holds such a name as Python does (``os.fsdecode``, the
byte escaped as a lone surrogate), while a URL carries it percent-encoded (``caf%E9.png``, as a file manager drags
it). ``QUrl.toLocalFile`` decodes those bytes as UTF-8, and ``QUrl.fromLocalFile`` encodes the escape as UTF-8 of
its own: either way another name, one that does not exist ("it cannot be read (No such file or directory)" for a
file dropped that is there)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

from PySide6.QtCore import QByteArray, QUrl

# Elsewhere (Windows) names are text, which Qt's own conversions keep (and drive letters need them: "/C:/x").
_BYTE_NAMES = os.name == "posix"


def local_path(url: QUrl) -> Path:
    """The local file ``url`` (a ``file:`` URL: ``isLocalFile``) names, its path made from the URL's bytes as the
    system's file names are (``os.fsdecode``); a host other than this one gives ``//host/path``, as
    ``toLocalFile`` does."""
    if not _BYTE_NAMES:
        return Path(url.toLocalFile())
    path = os.fsdecode(unquote_to_bytes(url.path(QUrl.ComponentFormattingOption.FullyEncoded)))
    return Path(f"//{url.host()}{path}" if url.host() else path)


def file_url(path: Path) -> QUrl:
    """The ``file:`` URL of the absolute ``path``, its name's bytes percent-encoded as they are on the disk (the
    URL a file manager takes: dragged out, opened)."""
    if not _BYTE_NAMES:
        return QUrl.fromLocalFile(str(path))
    return QUrl.fromEncoded(QByteArray(b"file://" + quote(os.fsencode(path)).encode("ascii")))
