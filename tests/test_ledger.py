"""Ledger (as a plain object): claims drop duplicates and done images but let retries through;
begin/end pin a crash on the image that was in flight; the source index spares reads."""

from annotation_engine.ledger import DONE, DUPLICATE, GO, SUSPECT, Ledger
from annotation_engine.sources import read_index


def test_claims(tmp_path):
    ledger = Ledger(str(tmp_path), done=["aaa"])
    assert ledger.claim(
        [("/a.png", "aaa", 1, "v", True), ("/b.png", "bbb", 1, "v", True), ("/copy-of-b.png", "bbb", 1, "v", True)]
    ) == [DONE, GO, DUPLICATE]
    assert ledger.claim([("/b.png", "bbb", 1, "v", False)]) == [GO]  # a retried task claims again
    p = ledger.progress()
    assert (p["skipped"], p["duplicates"], p["pending"]) == (1, 1, 2)


def test_crashes_count_only_unfinished_attempts(tmp_path):
    ledger = Ledger(str(tmp_path), done=[])
    assert ledger.begin("x") == (GO, 0)
    ledger.end("x", "annotated")
    assert ledger.begin("x") == (GO, 0)  # a clean earlier attempt is no crash
    assert ledger.begin("y") == (GO, 0)
    assert ledger.begin("y") == (SUSPECT, 1)  # y was still open: its actor died
    ledger.end("y", "crashed_engine")
    assert ledger.progress()["actor_deaths"] == 1 and ledger.progress()["quarantined"] == 1


def test_source_index_round_trip(tmp_path):
    ledger = Ledger(str(tmp_path), done=[])
    assert ledger.lookup([("/a.png", 10, "123")]) == [None]
    ledger.claim([("/a.png", "aaa", 10, "123", True), ("/b.png", "bbb", 5, "", True)])  # no version: not indexed
    assert ledger.save_index() == 1
    assert read_index(str(tmp_path)) == {"/a.png": (10, "123", "aaa")}
    again = Ledger(str(tmp_path), done=[])
    assert again.lookup([("/a.png", 10, "123"), ("/a.png", 11, "123"), ("/a.png", 10, "124")]) == ["aaa", None, None]


def test_rows_that_never_reached_the_engine_leave_its_times_alone(tmp_path):
    """A file that could not be listed or read is ended without being begun (it is quarantined
    with its problem): it counts as quarantined but starts no engine window (a rerun whose only
    images left were such files once failed with KeyError: 'first_begin')."""
    ledger = Ledger(str(tmp_path), done=[])
    ledger.end("/photos/dangling.png", "unreadable")
    p = ledger.progress()
    assert p["quarantined"] == 1 and not {"first_begin", "first_end", "last_end"} & p.keys()
    ledger.begin("x")
    ledger.end("x", "annotated")
    p = ledger.progress()
    assert p["first_begin"] <= p["first_end"] <= p["last_end"]
