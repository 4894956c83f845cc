"""What the web app keeps of a visitor's photo, and for how long.

A web server has to hold an upload for a moment; this module makes that moment short:

- ``discard(path, folder)``: the uploaded file is deleted as soon as the request that analyses it
  has read it (only files inside the web framework's upload folder, never the app's own example
  photos).
- ``RecentUploads``: the bytes of an analysed photo stay in this process's memory, never on disk,
  so the visitor can re-run it with another explanation method or target class. Bounded in count,
  total size and age; dropped when the tab that sent it closes or its page is cleared.
- Result images (the photo with its boxes, the faces, the heatmaps) are never files: they go to
  the page inside its HTML (``fer_demo.ui.cards``).

Pure Python, no web framework: ``fer_demo.ui.handler`` wires it to Gradio, and the tests use it directly.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from fer_demo.limits import RECENT_MAX_BYTES, RECENT_MAX_ITEMS, RECENT_TTL_S


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` (after resolving links and ``..``) lies inside ``folder``."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


def discard(path: str | Path, folder: str | Path, keep: Iterable[str | Path] = ()) -> bool:
    """Delete ``path`` if it lies inside ``folder`` and is not in ``keep``; True if it was deleted.

    The web framework stores each file in a folder of its own (``<folder>/<hash>/<name>``): that
    folder goes too once empty. Missing files are not an error (two requests may race).
    """
    p = Path(path)
    root, real = Path(folder).resolve(), p.resolve()
    if real == root or not is_inside(real, root):
        return False
    if str(real) in {str(Path(k).resolve()) for k in keep} or not p.is_file():
        return False
    try:
        p.unlink()
    except FileNotFoundError:
        return False
    parent = p.parent
    if parent.resolve() != root:
        try:
            parent.rmdir()  # only if empty
        except OSError:
            pass
    return True


class RecentUploads:
    """Bytes of recently analysed uploads, in memory, keyed by the upload's name on the server.

    The web framework names an upload after a hash of its content, so two visitors who send the
    same photo get the same name, and a visitor who re-runs a photo with other settings sends
    the same name again; the file itself is gone by then (``discard``), so the bytes are served
    from here. ``put(key, data, session)``, ``get(key)``; ``drop_session(session)`` forgets what
    only that browser session sent. Bounded by age since last use, count and total bytes (the
    least recently used go first). Thread-safe.
    """

    def __init__(self, ttl_s: float = RECENT_TTL_S, max_items: int = RECENT_MAX_ITEMS,
                 max_bytes: int = RECENT_MAX_BYTES, clock=time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._clock = clock
        # key -> (data, last use, sessions that sent it)
        self._items: OrderedDict[str, tuple[bytes, float, set[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, session: str | None = None) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if len(data) > self.max_bytes:
                return
            sessions = old[2] if old else set()
            if session:
                sessions.add(session)
            self._items[key] = (bytes(data), self._clock(), sessions)
            self._evict()

    def get(self, key: str, session: str | None = None) -> bytes | None:
        with self._lock:
            self._expire()
            item = self._items.pop(key, None)
            if item is None:
                return None
            if session:
                item[2].add(session)
            self._items[key] = (item[0], self._clock(), item[2])
            return item[0]

    def drop_session(self, session: str) -> None:
        """Forget the photos this session sent (those another session also sent stay theirs)."""
        with self._lock:
            for key in list(self._items):
                sessions = self._items[key][2]
                if session in sessions:
                    sessions.discard(session)
                    if not sessions:
                        del self._items[key]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._items)

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(len(data) for data, _, _ in self._items.values())

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, (_, t, _) in self._items.items() if now - t > self.ttl_s]:
            del self._items[key]

    def _evict(self) -> None:
        self._expire()
        total = sum(len(d) for d, _, _ in self._items.values())
        while self._items and (len(self._items) > self.max_items or total > self.max_bytes):
            _, (data, _, _) = self._items.popitem(last=False)
            total -= len(data)
