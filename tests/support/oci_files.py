"""The files of an image in an OCI layout (one image in index.json), read from its layer tars with whiteouts
applied: what a container started from it would see, without unpacking it anywhere.

``image_files(layout) -> {path: FileEntry}``; paths are relative (no leading slash), /proc, /sys and /dev left
out (builders differ in the mount points they leave there).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import NamedTuple

RUNTIME_DIRECTORIES = ("proc", "sys", "dev")


class FileEntry(NamedTuple):
    kind: bytes  # tarfile's type: REGTYPE, DIRTYPE, SYMTYPE, ... (LNKTYPE for a hard link)
    mode: str  # oct() of the permission bits
    uid: int
    gid: int
    sha256: str | None  # of a regular file's content
    link: str | None  # a symlink's target, or the path a hard link names
    device: tuple[int, int]


def image_files(layout: Path) -> dict[str, FileEntry]:
    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()

    manifest = json.loads(blob(json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]))
    files: dict[str, FileEntry] = {}

    def remove(path: str, children_only: bool = False) -> None:
        for key in [k for k in files if k.startswith(path + "/") or (not children_only and k == path)]:
            del files[key]

    for layer in manifest["layers"]:
        data = blob(layer["digest"])
        if layer["mediaType"].endswith("gzip"):
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                name = member.name.strip("/").removeprefix("./")
                parent, _, base = name.rpartition("/")
                if base == ".wh..wh..opq":
                    remove(parent, children_only=True)
                elif base.startswith(".wh."):
                    remove(f"{parent}/{base[4:]}".strip("/"))
                else:
                    if not member.isdir():
                        remove(name, children_only=True)
                    content_file = tar.extractfile(member) if member.isreg() else None
                    content = content_file.read() if content_file is not None else None
                    files[name] = FileEntry(member.type, oct(member.mode), member.uid, member.gid,
                                            hashlib.sha256(content).hexdigest() if content is not None else None,
                                            member.linkname if member.issym() or member.islnk() else None,
                                            (member.devmajor, member.devminor))
    return {k: v for k, v in files.items() if k.split("/", 1)[0] not in RUNTIME_DIRECTORIES}
