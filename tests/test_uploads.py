"""fer_demo.uploads: deleting uploads once read, the bounded in-memory copy, delayed deletion."""

from __future__ import annotations

import threading
from pathlib import Path


from fer_demo.uploads import RecentUploads, discard, is_inside


def put_file(folder: Path, name: str = "photo.jpg", data: bytes = b"jpeg bytes", sub: str = "abc123") -> Path:
    path = folder / sub / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_discard_deletes_an_upload_and_its_folder(tmp_path):
    cache = tmp_path / "cache"
    upload = put_file(cache)
    assert discard(upload, cache)
    assert not upload.exists() and not upload.parent.exists() and cache.is_dir()
    assert not discard(upload, cache)  # already gone: not an error


def test_discard_keeps_the_folder_when_other_files_are_in_it(tmp_path):
    cache = tmp_path / "cache"
    a, b = put_file(cache, "a.jpg"), put_file(cache, "b.jpg")
    assert discard(a, cache)
    assert b.is_file()


def test_discard_never_touches_files_outside_the_folder_or_kept(tmp_path):
    cache = tmp_path / "cache"
    outside = put_file(tmp_path / "examples")
    kept = put_file(cache, "example.jpg")
    sneaky = cache / ".." / "examples" / "abc123" / "photo.jpg"  # resolves outside
    assert not discard(outside, cache)
    assert not discard(sneaky, cache)
    assert not discard(kept, cache, keep=[str(kept)])
    assert not discard(cache, cache)
    assert outside.is_file() and kept.is_file() and cache.is_dir()


def test_is_inside(tmp_path):
    assert is_inside(tmp_path / "a" / "b", tmp_path)
    assert not is_inside(tmp_path.parent, tmp_path)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_recent_uploads_round_trip_and_expiry():
    clock = Clock()
    recent = RecentUploads(ttl_s=10, clock=clock)
    recent.put("/c/1/a.jpg", b"aaa", session="s1")
    assert recent.get("/c/1/a.jpg") == b"aaa"
    assert recent.get("/c/2/b.jpg") is None
    clock.t = 9
    assert recent.get("/c/1/a.jpg") == b"aaa"  # a use renews the time
    clock.t = 18
    assert recent.get("/c/1/a.jpg") == b"aaa"
    clock.t = 29
    assert recent.get("/c/1/a.jpg") is None and len(recent) == 0


def test_recent_uploads_are_bounded_by_count_and_bytes():
    recent = RecentUploads(max_items=2, max_bytes=10)
    recent.put("a", b"1234")
    recent.put("b", b"1234")
    recent.get("a")  # a is now the most recently used
    recent.put("c", b"1234")  # over the count: b (least recently used) goes
    assert recent.get("b") is None and recent.get("a") and recent.get("c")
    recent.put("d", b"12345678")  # over the bytes: the oldest go until it fits
    assert recent.total_bytes <= 10 and recent.get("d") == b"12345678"
    recent.put("huge", b"x" * 11)  # bigger than everything allowed: not kept at all
    assert recent.get("huge") is None


def test_recent_uploads_forget_what_a_closed_session_sent():
    recent = RecentUploads()
    recent.put("mine", b"1", session="s1")
    recent.put("shared", b"2", session="s1")
    recent.get("shared", session="s2")
    recent.put("api", b"3")
    recent.drop_session("s1")
    assert recent.get("mine") is None
    assert recent.get("shared") == b"2"  # s2 still uses it
    assert recent.get("api") == b"3"
    recent.drop_session("s2")
    assert recent.get("shared") is None


def test_recent_uploads_is_thread_safe():
    recent = RecentUploads(max_items=8, max_bytes=1000)

    def work(i: int) -> None:
        for j in range(200):
            recent.put(f"{i}-{j % 10}", b"x" * 10, session=f"s{i}")
            recent.get(f"{(i + 1) % 4}-{j % 10}")
            if j % 50 == 0:
                recent.drop_session(f"s{i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(recent) <= 8 and recent.total_bytes <= 1000
