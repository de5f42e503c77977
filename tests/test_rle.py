import numpy as np
import pytest

from shards.rle import (
    RLEError,
    coco_segmentation_to_rle,
    mask_to_rle,
    merge_rles,
    polygons_to_rle,
    rle_area,
    rle_to_mask,
    validate_rle,
)


def test_round_trip_is_bit_identical(rng):
    for shape in [(1, 1), (7, 13), (64, 48)]:
        m = rng.random(shape) > 0.5
        rle = mask_to_rle(m)
        assert rle["size"] == list(shape) and isinstance(rle["counts"], str)
        back = rle_to_mask(rle)
        assert back.dtype == bool and np.array_equal(back, m)
        assert rle_area(rle) == int(m.sum())


def test_empty_and_full_masks():
    for m in [np.zeros((5, 6), bool), np.ones((5, 6), bool)]:
        assert np.array_equal(rle_to_mask(mask_to_rle(m)), m)


def test_validate_rejects_wrong_totals_and_garbage():
    rle = mask_to_rle(np.ones((4, 4), bool))
    with pytest.raises(RLEError, match="cover"):
        validate_rle({"size": [5, 4], "counts": rle["counts"]})
    with pytest.raises(RLEError, match="invalid character"):
        validate_rle({"size": [4, 4], "counts": "\x01\x02"})
    with pytest.raises(RLEError):
        validate_rle({"size": [4], "counts": rle["counts"]})
    with pytest.raises(RLEError):
        validate_rle("not a dict")


def test_validate_accepts_long_random_rles(rng):
    # many runs exercise the delta coding (runs after the second are relative to the one two back)
    for _ in range(20):
        m = rng.random((37, 53)) > rng.random()
        validate_rle(mask_to_rle(m))


def test_polygons_and_uncompressed_rle():
    rle = polygons_to_rle([[1, 1, 8, 1, 8, 8, 1, 8]], 10, 10)
    m = rle_to_mask(rle)
    assert m[4, 4] and not m[9, 9]
    full = {"size": [3, 2], "counts": [0, 6]}  # COCO iscrowd style, column-major runs
    assert rle_to_mask(coco_segmentation_to_rle(full, 3, 2)).all()
    with pytest.raises(RLEError):
        polygons_to_rle([[1, 2, 3]], 10, 10)


def test_merge_is_union():
    a = np.zeros((6, 6), bool)
    a[:2] = True
    b = np.zeros((6, 6), bool)
    b[4:] = True
    assert np.array_equal(rle_to_mask(merge_rles([mask_to_rle(a), mask_to_rle(b)])), a | b)


def test_validation_total_matches_pycocotools_on_many_masks(rng):
    from shards.rle import _compressed_total

    for _ in range(200):
        h, w = rng.integers(1, 40, 2)
        m = rng.random((h, w)) > rng.random()
        if rng.random() < 0.5:  # long runs and large deltas
            m = np.zeros((h, w), bool)
            m[: rng.integers(0, h + 1)] = True
        assert _compressed_total(mask_to_rle(m)["counts"]) == h * w


def _reference_runs(counts: str) -> list[int]:
    """pycocotools' rleFrString, one character at a time, plus our checks (the spec of _decode_runs)."""
    if any(not 48 <= ord(ch) <= 111 for ch in counts):
        raise RLEError("invalid character")
    runs, x, k = [], 0, 0
    for ch in counts:
        c = ord(ch) - 48
        x |= (c & 0x1F) << (5 * k)
        k += 1
        if c & 0x20:
            continue
        if k > 12:
            raise RLEError("overlong run")
        if c & 0x10:
            x -= 1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
        x = k = 0
    if k:
        raise RLEError("truncated")
    if any(r < 0 for r in runs):
        raise RLEError("negative run length")
    return runs


def test_vectorised_run_decoder_matches_the_reference_on_masks_and_garbage(rng):
    from shards.rle import _decode_runs

    counts = [mask_to_rle(rng.random((h, w)) > rng.random())["counts"] for h, w in rng.integers(1, 90, (100, 2))]
    counts += ["0", "1", "O", "P0", "oooooooooooO", "ooooooooooooO", "0" * 9, "b" * 5, "1a1", "ab", "P"]
    alphabet = np.array([chr(i) for i in range(40, 120)])
    counts += ["".join(rng.choice(alphabet, rng.integers(1, 25))) for _ in range(3000)]
    counts += ["".join(chr(48 + int(v)) for v in rng.integers(0, 64, rng.integers(1, 25))) for _ in range(3000)]
    ok = 0
    for s in counts:
        try:
            want = _reference_runs(s)
        except RLEError as e:
            with pytest.raises(RLEError, match=str(e)):
                _decode_runs(s)
            continue
        assert _decode_runs(s).tolist() == want, s
        ok += 1
    assert ok > 150  # the valid strings, not just the errors, were compared


def test_single_chunk_and_multi_chunk_runs_give_totals_and_areas():
    # "1" = run of 1; "O" = -1 as one chunk; "P1" = 0 + 1 * 32 = 32 in two chunks
    assert validate_rle({"size": [1, 3], "counts": "12"}) == 2
    assert validate_rle({"size": [4, 8], "counts": "0P1"}) == 32
    with pytest.raises(RLEError, match="negative"):
        validate_rle({"size": [1, 1], "counts": "O"})
    with pytest.raises(RLEError, match="ASCII"):
        validate_rle({"size": [1, 1], "counts": "1é"})


def test_encoded_rles_skip_decoding_only_while_unchanged(rng, monkeypatch):
    import pickle

    import shards.rle as rle_mod

    m = rng.random((30, 40)) > 0.5
    rles = [
        mask_to_rle(m),
        polygons_to_rle([[1, 1, 8, 1, 8, 8, 1, 8]], 30, 40),
        merge_rles([mask_to_rle(m), mask_to_rle(~m)]),
        coco_segmentation_to_rle(dict(mask_to_rle(m)), 30, 40),
        pickle.loads(pickle.dumps(mask_to_rle(m))),
    ]
    full = [rle_mod.validate_rle(dict(r)) for r in rles]  # plain dicts: decoded in full
    assert full[0] == full[3] == full[4] == int(m.sum()) and full[2] == 30 * 40
    monkeypatch.setattr(rle_mod, "_decode_runs", None)  # any decode now fails loudly
    assert [rle_area(r) for r in rles] == full  # unchanged: the area known at encoding
    with pytest.raises(TypeError):
        validate_rle(dict(rles[0]))  # a plain copy is decoded in full
    monkeypatch.undo()

    for r in rles:
        bad = pickle.loads(pickle.dumps(r))
        bad["size"][0] += 1  # same counts for another size: covers the wrong number of pixels
        with pytest.raises(RLEError, match="cover"):
            validate_rle(bad)
        bad = pickle.loads(pickle.dumps(r))
        bad["counts"] = "zz"
        with pytest.raises(RLEError, match="invalid character"):
            validate_rle(bad)
        bad = pickle.loads(pickle.dumps(r))
        bad["counts"] = "".join(list(r["counts"])) + "1"  # an equal-looking but new string is re-checked
        with pytest.raises(RLEError, match="cover"):
            validate_rle(bad)
        bad = pickle.loads(pickle.dumps(r))
        bad["size"] = [0, 40]
        with pytest.raises(RLEError, match="positive"):
            validate_rle(bad)


def test_encoded_rle_is_a_plain_rle_to_json_and_equality():
    import json

    r = mask_to_rle(np.eye(3, dtype=bool))
    assert json.loads(json.dumps(r)) == r == {"size": [3, 3], "counts": r["counts"]}
    assert list(r) == ["size", "counts"]
