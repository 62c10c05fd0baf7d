"""Atomic file writes: a temporary file in the same directory, then `os.replace`.

`os.replace` within one directory is atomic on POSIX and Windows, so a reader (or a restarted
run) sees the old file or the new one, never a half-written one.
"""

import json
import os
import tempfile
from pathlib import Path


def save_model(model, path):
    """`model.save(path)` through a temporary `.keras` file renamed over `path`."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_json(path, record):
    path = Path(path)
    tmp = _temporary(path)
    try:
        with open(tmp, "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def remove_leftovers(directory, names):
    """Removes temporary files a killed run left behind for the files named `names`."""
    for name in names:
        for leftover in Path(directory).glob(f".{name}.*.tmp{Path(name).suffix}"):
            _remove(leftover)


def _temporary(path):
    # The suffix is kept: `model.save` requires a `.keras` file name.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
                                dir=path.parent)
    os.close(fd)
    return Path(name)


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
