"""Content-addressed stage cache.

Every expensive stage (a trained model, a hidden-state cache, a converted
checkpoint, an evaluated cell) is stored under ``<root>/<stage>/<hash>/``
where the hash covers everything the stage depends on.  A stage directory is
written under a temporary name and renamed only when complete, so a killed
run never leaves a half-written entry and simply resumes from the last
finished stage. Two runs that share a cache and build the same stage at once
both build it; the first to finish publishes it and the other drops its copy
(the content is the same), so neither deletes a stage the other is reading.

Under several processes (one per GPU) all of them build a stage together —
training has collectives in it — but only the main process publishes it.

It sits at the package's top level, beside ``paths`` and ``processes``,
because every stage uses it: victims cache backbones and states, defenses
their calibrations, experiments their cells; none of them may import from
``experiments``, which orchestrates them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recbackdoor.paths import cache_root

if TYPE_CHECKING:
    from recbackdoor.processes import Processes

DONE_MARKER = "key.json"


def _publish(tmp: Path, final: Path) -> None:
    """Rename a finished stage into place; when another run sharing the cache finished the same key first, keep
    theirs (it has the same content, and it may already be being read) and let the caller drop this copy."""
    if (final / DONE_MARKER).exists():
        return
    if final.exists():  # an unfinished leftover of a killed run (from before temporary names, or copied in)
        shutil.rmtree(final, ignore_errors=True)
    try:
        tmp.rename(final)
    except OSError:  # lost the race between the check and the rename: the winner's copy stands
        if not (final / DONE_MARKER).exists():
            raise


def stable_hash(key: Any) -> str:
    """16 hex digits of sha256 over the key's canonical JSON (sorted keys): equal keys, equal hash, any process."""
    text = json.dumps(key, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class StageCache:
    def __init__(self, root: Path | None = None, enabled: bool = True) -> None:
        self.root = Path(root) if root is not None else cache_root()
        self.enabled = enabled
        self.processes: Processes | None = None  # set by a multi-process run

    def path(self, stage: str, key: Any) -> Path:
        return self.root / stage / stable_hash(key)

    def partial_path(self, stage: str, key: Any) -> Path | None:
        """Where an unfinished ``(stage, key)`` keeps its mid-stage checkpoint; None when caching is off."""
        return self.root / stage / f".partial-{stable_hash(key)}.safetensors" if self.enabled else None

    def lookup(self, stage: str, key: Any) -> Path | None:
        path = self.path(stage, key)
        if self.enabled and (path / DONE_MARKER).exists():
            return path
        return None

    def get_or_create(self, stage: str, key: Any, build: Callable[[Path], None]) -> Path:
        """Return the finished directory for ``(stage, key)``, building it if absent."""
        procs = self.processes
        found = self.lookup(stage, key)
        if procs is not None:
            found = procs.agree(found)  # all processes take the same branch
        if found is not None:
            return found
        final = self.path(stage, key)
        tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            build(tmp)
            if procs is None or procs.is_main:
                (tmp / DONE_MARKER).write_text(json.dumps(key, sort_keys=True, default=str, indent=1))
                _publish(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if procs is not None:
            procs.barrier()
        return final

    def cached_json(self, stage: str, key: Any) -> Any | None:
        """The cached JSON value of ``(stage, key)``, or None when it has not been computed."""
        found = self.lookup(stage, key)
        return None if found is None else json.loads((found / "value.json").read_text())

    def get_json(self, stage: str, key: Any, compute: Callable[[], Any]) -> Any:
        """Cache a small JSON-serialisable result (e.g. one cell's metrics)."""

        def build(tmp: Path) -> None:
            (tmp / "value.json").write_text(json.dumps(compute(), default=float))

        return json.loads((self.get_or_create(stage, key, build) / "value.json").read_text())
