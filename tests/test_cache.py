"""The stage cache publishes a stage once, atomically, even when two runs build the same key at once."""

from pathlib import Path

from recbackdoor.cache import DONE_MARKER, StageCache


def test_a_second_build_of_the_same_key_keeps_the_first_published_copy(tmp_path):
    cache = StageCache(tmp_path)
    published = {}

    def slow_build(out: Path) -> None:  # while this one builds, "another run" builds and publishes the same key
        (out / "value.txt").write_text("second")
        published["first"] = cache.get_or_create("stage", {"k": 1}, lambda o: (o / "value.txt").write_text("first"))
        published["reader"] = (published["first"] / "value.txt").open()  # the other run is reading it

    final = cache.get_or_create("stage", {"k": 1}, slow_build)
    assert final == published["first"]
    assert (final / "value.txt").read_text() == "first"
    assert published["reader"].read() == "first"
    published["reader"].close()
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]  # no temporary copy left behind


def test_an_unfinished_leftover_is_replaced(tmp_path):
    cache = StageCache(tmp_path)
    leftover = cache.path("stage", "k")
    leftover.mkdir(parents=True)
    (leftover / "half.bin").write_text("x")
    final = cache.get_or_create("stage", "k", lambda o: (o / "value.txt").write_text("done"))
    assert final == leftover and (final / DONE_MARKER).exists()
    assert sorted(p.name for p in final.iterdir()) == [DONE_MARKER, "value.txt"]
