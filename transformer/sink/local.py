"""A local (or mounted) folder as the lake: useful in development and for tests.

A file is copied to `<root>/.incoming/.<replica>+<pid>+<uuid>.tmp`, fsynced, then linked under its key. Readers
skip dot-files and dot-folders (pyarrow, Hive, Athena), so they never see a partial file. A process killed mid-copy
leaves its temp file behind; a writer's start removes this host's leftovers whose process is gone, and anybody's
older than an hour (no copy of a spool file takes that long, so it is never one a live process is still writing).
The pid matters: on one host several processes write to one folder at once (the transformer's writer, quality
reports, batch scoring), and a start that removed every temp of the host broke the others' copies in flight.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path

from .layout import replica_name
from .locations import folder_location

log = logging.getLogger(__name__)

INCOMING_DIR = ".incoming"
STALE_TEMP_SECONDS = 3600.0


class LocalFolderWriter:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.incoming = self.root / INCOMING_DIR
        # '+' never appears in a replica name, so one host's prefix is never the start of another's.
        self._host_prefix = f".{replica_name()}+"
        self._prefix = f"{self._host_prefix}{os.getpid()}+"
        self._remove_leftover_temps()

    @classmethod
    def from_uri(cls, uri: str) -> LocalFolderWriter:
        return cls(folder_location(uri).root)

    def _remove_leftover_temps(self) -> None:
        try:
            temps = list(self.incoming.glob(".*.tmp"))
        except OSError:
            return  # no folder yet (or unreadable: put() will say so)
        cutoff = time.time() - STALE_TEMP_SECONDS
        for temp in temps:
            try:
                if self._left_by_a_dead_process(temp.name) or temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    log.warning(
                        "sink lake folder: removed the partial copy %s left by a killed process", temp
                    )
            except OSError:
                continue  # gone already, or not ours to remove: the next start tries again

    def _left_by_a_dead_process(self, name: str) -> bool:
        if not name.startswith(self._host_prefix):
            return False  # another replica's: only the age rule applies
        pid = name[len(self._host_prefix) :].split("+", 1)[0]
        return pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid))

    def put(self, key: str, local_path: Path) -> bool:
        final = self.root / key
        if final.is_file():
            return False  # stored by an earlier attempt; never overwrite
        final.parent.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(parents=True, exist_ok=True)
        temp = self.incoming / f"{self._prefix}{uuid.uuid4().hex}.tmp"
        try:
            with open(local_path, "rb") as source, open(temp, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
                target.flush()
                os.fsync(target.fileno())
            try:
                # link() fails if the name exists, unlike rename(): readers never see a partial or replaced file.
                os.link(temp, final)
            except FileExistsError:
                if final.is_file():
                    return False  # stored by an earlier attempt
                # A folder (or anything else) in the way: nothing is stored, and returning would say it was.
                raise IsADirectoryError(
                    f"cannot store {final}: something that is not a file is there"
                ) from None
            except OSError:
                os.replace(temp, final)  # filesystems without hard links (some network mounts)
            dir_fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        finally:
            temp.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True
