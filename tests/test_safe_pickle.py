import collections
import os
import pickle

import pytest

from shards.converters import ConvertError
from shards.converters.safe_pickle import UnsafePickleError, safe_load, safe_loads


class _Exploit:
    """Pickles into a call of os.system, as a malicious refs file would."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_refs_load(protocol):
    refs = [
        {
            "ref_id": 1,
            "ann_id": 7,
            "split": "testA",
            "sentences": [{"sent": "man on left", "tokens": ["man"]}],
            "box": (1.5, 2.0),
            "ok": True,
            "none": None,
            "big": 2**70,
        }
    ]
    assert safe_loads(pickle.dumps(refs, protocol=protocol)) == refs


def _py2_str(b: bytes) -> bytes:
    return b"U" + bytes([len(b)]) + b  # SHORT_BINSTRING: how Python 2 pickles a str


def test_python2_byte_strings_become_str():
    # what Python 2 wrote for [{'sent': 'caf\xc3\xa9', 'raw': '\xe9t\xe9', u'ann_id': 3}]: str
    # values load as bytes under encoding="bytes"; keys and values are decoded (UTF-8, else Latin-1)
    data = (
        b"\x80\x02]}("
        + _py2_str(b"sent")
        + _py2_str(b"caf\xc3\xa9")
        + _py2_str(b"raw")
        + _py2_str(b"\xe9t\xe9")
        + b"X\x06\x00\x00\x00ann_id"
        + b"K\x03ua."
    )
    assert safe_loads(data) == [{"sent": "café", "raw": "été", "ann_id": 3}]


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 1, "x": _Exploit(marker)}], protocol=2))
    with pytest.raises(UnsafePickleError, match=r"refs\(unc\)\.p: refusing to load the global (posix|os|nt)\.system"):
        safe_load(path)
    assert not marker.exists()
    # any class is refused too, not only callables with side effects
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        safe_loads(pickle.dumps(collections.OrderedDict(a=1)))
    assert issubclass(UnsafePickleError, (ConvertError, pickle.UnpicklingError))


def test_corrupt_pickle_is_a_convert_error():
    with pytest.raises(ConvertError, match="not a readable pickle"):
        safe_loads(pickle.dumps([1, 2, 3])[:-3], "refs(unc).p")


def test_loading_restores_the_garbage_collector_state():
    import gc

    data = pickle.dumps([{"ref_id": i, "sentences": [{"sent": "a"}]} for i in range(3)], protocol=2)
    assert gc.isenabled()
    assert safe_loads(data)[2]["ref_id"] == 2 and gc.isenabled()
    gc.disable()
    try:
        assert safe_loads(data)[0]["sentences"] == [{"sent": "a"}] and not gc.isenabled()
        with pytest.raises(ConvertError):
            safe_loads(data[:-5])
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ConvertError):
        safe_loads(b"garbage")
    assert gc.isenabled()


def _refs(n):
    return [
        {"ref_id": i, "split": ["train", "val"][i % 2], "sentences": [{"sent": f"thing {i}", "tokens": ["thing"]}]}
        for i in range(n)
    ]


def _item_by_item(path, items):
    from shards.synth.generate import _PickledListWriter

    with open(path, "wb") as f:
        w = _PickledListWriter(f)
        for item in items:
            w.append(item)
        w.close()


def _train_ids(ref):
    return ref["ref_id"] if ref["split"] == "train" else None


@pytest.mark.parametrize("protocol", [0, 2, 4, 5, "items"])
def test_streamed_list_equals_the_filtered_full_load(tmp_path, protocol):
    from shards.converters.safe_pickle import safe_load_list

    refs, path = _refs(2500), tmp_path / "refs.p"  # > 1000 items: several APPENDS batches
    if protocol == "items":
        _item_by_item(path, refs)
    else:
        path.write_bytes(pickle.dumps(refs, protocol=protocol))
    assert safe_load_list(path, _train_ids) == [r["ref_id"] for r in safe_load(path) if r["split"] == "train"]
    assert len(safe_load_list(path, _train_ids)) == 1250


def test_streamed_list_falls_back_to_a_whole_load_when_items_share_objects(tmp_path):
    from shards.converters.safe_pickle import safe_load_list

    shared = {"sent": "the same dict object in two refs"}
    refs = [
        {"ref_id": 1, "split": "train", "s": shared},
        {"ref_id": 2, "split": "val"},
        {"ref_id": 3, "split": "train", "s": shared},
    ]
    path = tmp_path / "refs.p"
    path.write_bytes(pickle.dumps(refs, protocol=2))  # the third ref points back at the first one's dict
    assert safe_load_list(path, lambda r: (r["ref_id"], r.get("s")) if r["split"] == "train" else None) == [
        (1, shared),
        (3, shared),
    ]


def test_streamed_list_keeps_the_restrictions_and_errors(tmp_path):
    from shards.converters.safe_pickle import safe_load_list

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.p"
    path.write_bytes(pickle.dumps([{"ref_id": 1}, {"x": _Exploit(marker)}], protocol=2))
    with pytest.raises(UnsafePickleError, match="evil.p: refusing to load the global"):
        safe_load_list(path, lambda r: r)
    assert not marker.exists()
    path.write_bytes(pickle.dumps({"not": "a list"}, protocol=2))
    with pytest.raises(ConvertError, match="expected a pickled list, got dict"):
        safe_load_list(path, lambda r: r)
    path.write_bytes(pickle.dumps(_refs(10), protocol=2)[:-7])
    with pytest.raises(ConvertError, match="not a readable pickle"):
        safe_load_list(path, lambda r: r)

    def refuse(ref):
        raise ConvertError("no thanks")

    path.write_bytes(pickle.dumps(_refs(3), protocol=2))
    with pytest.raises(ConvertError, match="evil.p: no thanks"):
        safe_load_list(path, refuse)
    path.write_bytes(b"\x80\x02]}(" + _py2_str(b"sent") + _py2_str(b"caf\xc3\xa9") + b"ua.")  # Python 2 str
    assert safe_load_list(path, lambda r: r) == [{"sent": "café"}]


def test_streamed_list_holds_one_item_at_a_time(tmp_path):
    import tracemalloc

    from shards.converters.safe_pickle import safe_load_list

    path = tmp_path / "refs.p"
    _item_by_item(path, _refs(12000))
    tracemalloc.start()
    try:
        safe_load_list(path, lambda r: None)
        streamed = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        whole = safe_load(path)
        loaded = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(whole) == 12000 and streamed < loaded / 10  # streamed: about the 1 MB read buffer
