"""Which server-side video paths a client may name: only files inside POSE_MEDIA_ROOTS.

A path is resolved with realpath (every symlink followed) and must then lie inside a root that is
itself resolved the same way, so neither ``..`` nor a symlink planted inside a root can reach out.
``..`` components and relative paths are refused outright, before resolving: they have no honest
use in an API that takes absolute paths, and refusing them keeps the rule easy to audit.
The job stores the resolved path, so the worker opens exactly the file that was checked. The file
must also be a self-contained video container (worker/pipeline/io/media_checks.py): a playlist inside a
root could otherwise make FFmpeg read files outside every root.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from web.error_codes import ErrorCode
from web.errors import ApiError
from worker.pipeline.io.media_checks import SNIFF_BYTES, VIDEO_CONTAINERS, video_container


class MediaRoots:
    def __init__(self, roots: Iterable[str]) -> None:
        self.roots = tuple(os.path.realpath(os.path.expanduser(r)) for r in roots if r)

    def resolve(self, path: str) -> str:
        """The resolved path of an existing file under a root; ApiError 403 (outside the roots,
        relative, ``..``) or 422 (not an existing regular file) otherwise."""
        if not self.roots:
            raise ApiError(
                403, ErrorCode.PATH_FORBIDDEN, "this server accepts no server-side paths (POSE_MEDIA_ROOTS is unset)"
            )
        if not os.path.isabs(path):
            raise ApiError(403, ErrorCode.PATH_FORBIDDEN, "video_path must be an absolute path")
        if ".." in path.replace("\\", "/").split("/"):
            raise ApiError(403, ErrorCode.PATH_FORBIDDEN, "video_path must not contain '..'")
        real = os.path.realpath(path)
        if not any(_inside(real, root) for root in self.roots):
            raise ApiError(403, ErrorCode.PATH_FORBIDDEN, "video_path is outside the media roots")
        if not os.path.isfile(real):
            raise ApiError(422, ErrorCode.VIDEO_NOT_FOUND, "video_path is not an existing file")
        try:
            with open(real, "rb") as f:
                head = f.read(SNIFF_BYTES)
        except OSError:
            raise ApiError(422, ErrorCode.VIDEO_NOT_READABLE, "video_path cannot be read by the server") from None
        if video_container(head) is None:
            # a playlist or concat list inside a root may name files outside it: FFmpeg would follow
            raise ApiError(
                415,
                ErrorCode.NOT_A_VIDEO,
                f"video_path is not a video in a container this service decodes ({VIDEO_CONTAINERS}); "
                "playlists and other files that refer to other files are refused",
            )
        return real


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
