"""Caching, once for every layer: the cache folder, an atomic file write, a bounded thread-safe LRU that builds
each value at most once, process-wide named caches, digests remembered while their object lives, and the digest
of the code that makes a cached result."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

V = TypeVar("V")
T = TypeVar("T")

STALE_TEMP_SECONDS = 3600  # a temp file this old belongs to a killed writer (the largest save takes seconds)

_registry_lock = threading.Lock()  # process caches and digests


def cache_dir() -> Path:
    """Where obd caches trained models, curves and timings: $OBD_CACHE_DIR, else ~/.cache/obd."""
    return Path(os.environ.get("OBD_CACHE_DIR") or Path.home() / ".cache" / "obd").expanduser()


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Write a file through a temp file in the same folder and os.replace, so readers and crashes never see
    a partial file; leftovers of killed writers (older than STALE_TEMP_SECONDS) are removed on the way, and the
    temp file is removed when `write` fails.

    Args:
        path: the destination; its folder is made if missing.
        write: called with the temp file's path (it keeps the destination's suffix, as Keras requires).

    Raises:
        OSError: when the folder cannot be written; whatever `write` raises.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    now = time.time()
    for old in path.parent.glob(prefix + "*.tmp" + path.suffix):
        try:
            if now - old.stat().st_mtime > STALE_TEMP_SECONDS:
                old.unlink()
        except FileNotFoundError:  # another process cleaned or finished it first
            pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a saved model is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_size(maxsize: object) -> int:
    """Validate a cache's size; raises ValueError saying what to give."""
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
        raise ValueError(f"a cache's size must be a whole number of entries, at least 1; got {maxsize!r}")
    return maxsize


class LruCache:
    """A bounded, thread-safe LRU map whose values are each built at most once: callers of a key being built wait
    for that build instead of repeating it; different keys build at the same time.

    Args:
        maxsize: the most entries kept; the least recently used go first.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = check_size(maxsize)
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._building: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], V] | None = None) -> Any:
        """The value under `key`; when it is missing, `build()`'s (kept; an exception is raised, not kept), or None
        without `build`."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            if build is None:
                return None
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._values:  # built by the caller this one waited for
                    return self._values[key]
            value = build()
            self.put(key, value)
            with self._lock:
                self._building.pop(key, None)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        """Keep `value` under `key` (the most recently used), dropping the least recently used beyond maxsize."""
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.maxsize:
                self._values.popitem(last=False)


_process_caches: dict[str, LruCache] = {}


def process_cache(name: str, maxsize: int) -> LruCache:
    """The process-wide LruCache called `name` (made on first use): one per worker process or server."""
    with _registry_lock:
        return _process_caches.setdefault(name, LruCache(maxsize))


_digests: dict[tuple[int, str], str] = {}  # (id(obj), kind) -> digest, while obj lives


def memo_digest(obj: T, kind: str, compute: Callable[[T], str]) -> str:
    """`compute(obj)`, remembered while `obj` lives (by identity: for large read-only arrays, hashed once).

    Raises:
        TypeError: for an object that takes no weak reference (its lifetime could not be followed).
    """
    key = (id(obj), kind)
    with _registry_lock:
        known = _digests.get(key)
    if known is not None:
        return known
    value = compute(obj)
    with _registry_lock:
        if key not in _digests:
            weakref.finalize(obj, _digests.pop, key, None)
            _digests[key] = value
    return value


@functools.cache
def source_digest(modules: tuple[str, ...]) -> str:
    """A digest of the source of the named modules, so that a result cached under it is never read by other code.

    Args:
        modules: dotted module names, found without importing them; "package.*" stands for every module file
            of the package.

    Returns:
        16 hex characters (blake2b over each module's name and its file's bytes, in a fixed order).

    Raises:
        ValueError: for a module that has no source file.
    """
    files: list[tuple[str, Path]] = []
    for name in sorted(set(modules)):
        spec = importlib.util.find_spec(name.removesuffix(".*"))
        if name.endswith(".*") and spec is not None and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations)))
            files += [(f"{name[:-2]}.{p.stem}", p) for p in sorted(folder.glob("*.py"))]
        elif spec is not None and spec.origin and spec.origin.endswith(".py"):
            files.append((name, Path(spec.origin)))
        else:
            raise ValueError(f"no source file for module {name!r}")
    h = hashlib.blake2b(digest_size=8)
    for name, path in files:
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
