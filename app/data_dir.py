"""Where the app keeps the user's data: one folder, chosen by ``--data-dir``, ``NIBBLE_DATA_DIR`` or appdirs.

Images, the gallery database and settings must stay together in it. A data folder renamed or moved while the app
runs is not followed: its old path is not made again for the next file (``DataDir.check_in_place``), which put new
images and settings in a second tree the database, still open in the moved folder, knew nothing of. Nor is an
images folder that is gone or another (a link to a drive that was unplugged, or unmounted: the empty mount point
left in its place took the new pictures onto the system disk, hidden once the drive came back).
"""

from __future__ import annotations

import dataclasses
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from gpu.errors import OutputError
from gpu.output_folders import LinkLeadsNowhere, check_folder_writable, link_to_nothing, make_folders
from gpu.paths import DATA_DIR_ENV, data_dir_override, named_data_dir, user_data_dir

# The trash when images/ is on another disk than the data folder (a link or junction to a bigger one): a file moves
# to the trash and back by one rename (crash-safe, see ``app.image_files``), and no rename crosses disks. Hidden, so
# that the images folder's listing (``png_paths``) never takes an image in the trash for a gallery image.
IMAGES_TRASH = ".trash"


class DataDirMoved(OutputError, OSError):
    """The data folder was moved, renamed or removed since the app opened it. An ``OSError`` too, so that every
    caller that handles a failed file operation (delete, undo, settings) handles this one."""


class ImagesNotReadable(DataDirMoved):
    """The images folder may not be listed, and may be written (its permissions 300): it is in place, and pictures
    are saved in it (``images_not_listed``); a file of it not found is not there."""


@dataclass(frozen=True)
class DataDir:
    root: Path
    # (st_dev, st_ino) of ``root`` when the app opened it (``create``); None: not checked (a DataDir never created)
    identity: tuple[int, int] | None = field(default=None, compare=False, repr=False)
    trash_folder: Path | None = field(default=None, compare=False, repr=False)  # chosen by ``create``
    # (st_dev, st_ino) of the images folder when the app opened it, a link to it followed; None: not checked
    images_identity: tuple[int, int] | None = field(default=None, compare=False, repr=False)
    # Why the models folder could not be reached when the app opened the data folder ("<models> is a link to …,
    # which is not there: …"), "" when it could (``create``)
    models_away: str = field(default="", compare=False, repr=False)

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def trash(self) -> Path:
        return self.trash_folder or self.root / "trash"

    @property
    def other_trash(self) -> Path:
        """Where the trash is kept when ``trash`` is not (``_trash_for_images``): it was there at an earlier start
        if images/ has moved to another drive, or back, since; start-up moves what it holds into ``trash``."""
        beside = self.root / "trash"
        return self.images / IMAGES_TRASH if self.trash == beside else beside

    @property
    def database(self) -> Path:
        return self.root / "nibble.sqlite3"

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    @property
    def quantized(self) -> Path:
        return self.root / "models"

    def create(self) -> DataDir:
        """Makes the folders (those there already are kept) and checks a file can be made in each: an existing
        folder that takes none (read-only, or a link to such a place) passed mkdir, and a later step failed
        naming a file inside (for images/: every generated picture, after the work). ``OSError`` (``filename``
        the folder concerned) when one cannot be used. Returns the DataDir to use: the root's identity
        remembered (``check_in_place``) and its trash chosen (``IMAGES_TRASH``). A models folder that is a link
        leading nowhere (its drive unplugged) is no refusal: ``models_away`` says why it cannot be used."""
        self.root.mkdir(parents=True, exist_ok=True)
        check_folder_writable(self.root)
        make_folders([self.images])  # a link there leading nowhere (or a loop) is named as one, not "File exists"
        check_folder_writable(self.images)
        root, images = os.stat(self.root), os.stat(self.images)
        data = dataclasses.replace(
            self, identity=(root.st_dev, root.st_ino), trash_folder=self._trash_for_images(images.st_dev, root.st_dev),
            images_identity=(images.st_dev, images.st_ino),
        )  # fmt: skip
        make_folders([data.trash])  # as images/: a link to an unplugged drive said as such, not as "File exists"
        check_folder_writable(data.trash)  # the gallery's deletes and their undo go through it
        try:
            make_folders([data.quantized])
        except LinkLeadsNowhere as away:
            # models/ a link to a drive that is unplugged: the gallery, the history and the built-in models need
            # none of it, so the app starts without it (its models listed as missing, no run saved there) and
            # uses it again once the drive is back
            return dataclasses.replace(data, models_away=away.strerror)
        check_folder_writable(data.quantized)
        return data

    def _trash_for_images(self, images_dev: int, root_dev: int) -> Path:
        """``trash/`` unless images/ is on another file system (then ``IMAGES_TRASH`` inside it), or was when an
        image last went to the trash: the trash stays where its images are, the images folder moved back too."""
        inside = self.images / IMAGES_TRASH
        if inside.is_dir():
            return inside
        beside = self.root / "trash"
        if images_dev != (os.stat(beside).st_dev if beside.is_dir() else root_dev):
            return inside
        return beside

    def check_in_place(self) -> None:
        """Raises ``DataDirMoved`` when ``root`` is gone, or is no longer the folder the app opened (the old one
        moved or renamed, another made in its place), or when the images folder is gone or another
        (``_images_gone``). Call it before writing a file whose folders would otherwise be made again at the old
        path; creating the root itself is for start-up (``create``) only.

        Refusing every save of a user whose folder never moved (and the picture just made with it) is worse than
        what this guards against, so each check refuses only what it must:
        - the data folder whose identity changed is the same only when its inode number is unchanged and only its
          device number differs (a network drive mounted again): a copy in its place (moved to another disk and
          linked back, restored from a backup) has another inode, and the database SQLite still has open is then
          the deleted one, every row written to it lost. Its inode cannot change under the app otherwise: the
          open database pins the folder in the system's cache;
        - the images folder is refused only when it is gone or unreachable, or is the empty mount point of an
          unmounted drive (another device and inode, nothing in it). On the same device a new inode number is no
          sign of a move: FAT, exFAT and many FUSE file systems give a folder a new one each time it is read back
          into the cache, and a copy of the folder in its place loses nothing: the pictures go into it."""
        if not self._root_in_place():
            raise DataDirMoved(
                f"The data folder {self.root} was moved or removed while Nibble Studio ran, so nothing more is "
                "saved in it: quit Nibble Studio and start it again (with --data-dir NEW_PATH if the folder was "
                "moved).",
                "Its images, gallery database and settings stay together only in one folder: a new one made at "
                "the old path would split them.",
            )
        if (gone := self._images_gone()) is not None:
            raise gone

    def _root_in_place(self) -> bool:
        """Whether ``root`` is the folder ``create`` opened: the same identity, or the same folder mounted again
        (``_remounted``) still holding the very database file the app opened."""
        try:
            now = os.stat(self.root)
        except FileNotFoundError:
            return False
        except OSError as exc:  # a dead network mount (ENOTCONN, EIO): said as it is, not as a raw error
            raise DataDirMoved(
                f"The data folder {self.root} cannot be reached ({exc.strerror or exc}), so nothing is saved in it.",
                "If it is on a network or external drive, connect or mount that drive again, then try again.",
            ) from None
        if self.identity is None or (now.st_dev, now.st_ino) == self.identity:
            return True
        return _remounted(now, self.identity)

    def images_away(self) -> DataDirMoved | None:
        """Why no picture can be saved in the images folder now, as a job refused for it says it, or why it cannot
        be listed while pictures are saved in it (``ImagesNotReadable``); None where it can be listed, and is in
        place: it cannot be listed (``images_not_listed``), or it is the empty mount point of an unmounted drive
        (``_images_gone``). Its watch says it on screen while it lasts, and finds no picture gone meanwhile
        (``app.folder_watch``): the mount point listed had every picture of the drive flagged missing."""
        return images_not_listed(self.images) or self._images_gone()

    def _images_gone(self) -> DataDirMoved | None:
        """Why no picture may be saved in the images folder now, if so: it is gone (a link to a drive unplugged),
        or it is the empty mount point of an unmounted drive, where new pictures went onto the system disk, hidden
        once the drive is back. None otherwise (see ``check_in_place``)."""
        if self.images_identity is None:
            return None
        try:
            now = os.stat(self.images)
        except OSError as exc:
            return _images_unreachable(self.images, exc)
        dev, ino = self.images_identity
        if now.st_dev == dev or now.st_ino == ino or _holds_anything(self.images):
            return None
        return DataDirMoved(
            f"The images folder {self.images} is no longer the folder Nibble Studio opened: it is empty, as the "
            "folder a drive was mounted on is once the drive is unmounted. No picture is saved there, where it "
            "would be hidden once the drive is back.",
            "Mount or plug in that drive again, then try again. If the folder was replaced on purpose, quit "
            "Nibble Studio and start it again.",
        )


def images_not_listed(images: Path) -> DataDirMoved | None:
    """Why the images folder cannot be listed now, as a job refused for it says it (``_images_unreachable``), or,
    where only its reading is refused and it can still be written, that pictures are still saved in it
    (``_images_not_readable``); None where it can be listed (back meanwhile). Its watch says it on screen while it
    lasts (``app.folder_watch``)."""
    try:
        with os.scandir(images):
            return None
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM) and os.access(images, os.W_OK | os.X_OK):
            return _images_not_readable(images, exc)
        return _images_unreachable(images, exc)


def _images_not_readable(images: Path, exc: OSError) -> DataDirMoved:
    """Why the images folder cannot be listed where it may be written all the same (its permissions 300: write and
    enter, no read): pictures are saved in it, as ``check_in_place`` lets them be; only what is put in it by hand
    is not seen. It said "so no picture is saved in it" as for a folder gone."""
    return ImagesNotReadable(
        f"The images folder {images} cannot be listed ({exc.strerror or exc}): new pictures are still saved in it, "
        "but pictures put in it by hand are not found, and none is flagged missing, until it can be read.",
        "Give Nibble Studio permission to read that folder (its owner can, for example with chmod u+r).",
    )


def _images_unreachable(images: Path, exc: OSError) -> DataDirMoved:
    """Why the images folder cannot be used, from the error its ``os.stat`` gave: only "not there" is a folder moved
    or removed (or a link to one); a dead network mount (ENOTCONN, EIO) or a refusal (EACCES) is said as it is."""
    if exc.errno != errno.ENOENT:
        return DataDirMoved(
            f"The images folder {images} cannot be reached ({exc.strerror or exc}), so no picture is saved in it.",
            "If it is on a network or external drive, connect or mount that drive again; check that Nibble Studio "
            "may open the folder. Then try again.",
        )
    if os.path.lexists(images):  # a link (or a Windows junction, which islink does not see) leading nowhere
        return DataDirMoved(
            f"The images folder {images} cannot be reached: {_link_gone(images)}. No picture is saved until it "
            "is back.",
            "Plug in or mount that drive again (or put the folder back), then try again.",
        )
    return DataDirMoved(
        f"The images folder {images} was moved or removed while Nibble Studio ran, so no picture is saved in it.",
        f"Move it back, or make {images} a link to where it is now, then try again. If it was removed on purpose, "
        "quit Nibble Studio and start it again: that makes a new, empty images folder.",
    )


def _remounted(now: os.stat_result, opened: tuple[int, int]) -> bool:
    """Whether a folder whose identity is now ``now`` and was ``opened`` (st_dev, st_ino) is that folder mounted
    again: a remount (NFS, SMB, FUSE) keeps inode numbers and may change the device number; a copy or another
    folder in its place has another inode."""
    return now.st_ino == opened[1] and now.st_dev != opened[0]


def _holds_anything(folder: Path) -> bool:
    """Whether ``folder`` holds any entry but hidden ones (the trash); False when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return any(not entry.name.startswith(".") for entry in entries)
    except OSError:
        return False


def _link_gone(link: Path) -> str:
    """Why a link (or Windows junction) ``link`` leads nowhere, as a phrase: "it is a link to …"."""
    return f"it is {link_to_nothing(link)}"


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> DataDir:
    """An explicit folder wins, else ``NIBBLE_DATA_DIR``'s, both read by ``named_data_dir`` (``~`` expanded,
    absolute); it is exported so the engine (model library) agrees on the location, and a later chdir does not
    move it. ``OSError`` when the folder cannot be used (``DataDir.create``), or when ``explicit`` names none (only
    spaces)."""
    folder = named_data_dir(explicit) if explicit is not None else data_dir_override()
    if explicit is not None and folder is None:
        raise OSError(errno.EINVAL, "the folder name is only spaces", str(explicit))
    if folder is not None:  # a link that leads nowhere is refused (user_data_dir makes it), not its target made
        os.environ[DATA_DIR_ENV] = str(folder)
    return DataDir(user_data_dir().resolve()).create()
