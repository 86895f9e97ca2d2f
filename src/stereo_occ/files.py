"""Writing files so that a reader never sees half of one.

Every output a later stage trusts (meta.json, splits, metrics, meshes, reports) goes through
:func:`write_atomic`: the bytes land under a unique temporary name in the same folder, then one
``os.replace`` gives them the final name. A kill leaves the old file or the new one, never a mix, and
two processes (shard jobs on several hosts) never share a temporary name.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
