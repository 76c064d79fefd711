"""A local (or mounted) folder as the lake: useful in development and for tests."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse


class LocalFolderWriter:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def from_uri(cls, uri: str) -> LocalFolderWriter:
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file URI must be file:///absolute/path, got {uri!r}")
        return cls(Path(unquote(parsed.path)))

    def put(self, key: str, local_path: Path) -> None:
        final = self.root / key
        if final.exists():
            return  # stored by an earlier attempt; never overwrite
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(local_path, "rb") as source, open(temp, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
                target.flush()
                os.fsync(target.fileno())
            try:
                # link() fails if the name exists, unlike rename(): readers never see a partial or replaced file.
                os.link(temp, final)
            except FileExistsError:
                return
            except OSError:
                os.replace(temp, final)  # filesystems without hard links (some network mounts)
            dir_fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        finally:
            temp.unlink(missing_ok=True)
