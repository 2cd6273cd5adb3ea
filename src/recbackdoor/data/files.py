"""Dataset files: where they live, where they come from, and checking them.

The raw files are never shipped with the project (their licences forbid
redistribution); each loader declares the files it needs, their official
source and their sha256, and fails with one line naming what is missing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from recbackdoor.errors import UserError
from recbackdoor.paths import DATA_ENV, data_root


@dataclass(frozen=True)
class DataFile:
    folder: str
    name: str
    sha256: str
    source: str

    def path(self, root: Path | None = None) -> Path:
        return (root or data_root()) / self.folder / self.name


def require(files: list[DataFile], root: Path | None = None) -> dict[str, Path]:
    """Paths of ``files``; one clear error line when any is missing."""
    root = root or data_root()
    missing = [f for f in files if not f.path(root).is_file()]
    if missing:
        names = ", ".join(f"{f.folder}/{f.name}" for f in missing)
        raise UserError(
            f"missing data file(s) {names} under {root} (set {DATA_ENV} to the folder holding "
            f"'{missing[0].folder}/'); official source: {missing[0].source}"
        )
    return {f.name: f.path(root) for f in files}


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes: the one checksum every loader records (memoised while the file is unchanged,
    as every run of an experiment checksums the same files again)."""
    path = Path(path)
    return _sha256(path, path.stat().st_mtime)


@lru_cache(maxsize=64)
def _sha256(path: Path, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums(files: list[DataFile], root: Path | None = None, strict: bool = False) -> dict[str, str]:
    """sha256 of each file; with ``strict`` a mismatch is an error (a modified copy)."""
    out = {}
    for spec in files:
        path = spec.path(root)
        actual = sha256(path)
        if strict and actual != spec.sha256:
            raise UserError(f"{path}: sha256 {actual[:12]}… differs from the official {spec.sha256[:12]}…")
        out[f"{spec.folder}/{spec.name}"] = actual
    return out
