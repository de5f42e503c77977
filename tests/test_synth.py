import json
import pickle

import numpy as np
import pytest
from PIL import Image

from shards.converters.convert import convert
from shards.converters.safe_pickle import safe_load
from shards.reader import ShardReader
from shards.rle import rle_to_mask
from shards.synth import CATEGORIES, generate_shapes, make_scene
from shards.synth.generate import SynthConfig
from shards.verify import verify_split

N = 40
GRANULARITY = {"shape": "instance", "object": "instance", "part": "part", "group": "group"}


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_files(tmp_path):
    a = generate_shapes(tmp_path / "a", images=12, seed=3, size=96)
    b = generate_shapes(tmp_path / "b", images=12, seed=3, size=96)
    assert a == b and _files(tmp_path / "a") == _files(tmp_path / "b")
    generate_shapes(tmp_path / "c", images=12, seed=4, size=96)
    assert _files(tmp_path / "a") != _files(tmp_path / "c")
    # image i depends on (seed, i) only: a longer run starts with the same images
    generate_shapes(tmp_path / "d", images=15, seed=3, size=96)
    assert _files(tmp_path / "d")["images/synth_000011.png"] == _files(tmp_path / "a")["images/synth_000011.png"]
    assert Image.open(tmp_path / "a/images/synth_000000.png").size == (96, 96)


def test_ensure_keeps_a_complete_set_and_refuses_one_made_otherwise(tmp_path):
    from common.errors import UniLSegError
    from shards.synth import ensure_shapes

    assert ensure_shapes(tmp_path / "s", images=6, seed=1, size=64)
    assert not ensure_shapes(tmp_path / "s", images=6, seed=1, size=64)  # complete: kept
    with pytest.raises(
        UniLSegError,
        match=r"holds a synthetic set made with seed 1, images 6, size 64; asked for "
        r"seed 2, images 6, size 64: remove it",
    ):
        ensure_shapes(tmp_path / "s", images=6, seed=2, size=64)  # a "held-out" set must not be another's images


def test_refer_layout_and_conversion(tmp_path):
    src, out = tmp_path / "shapes", tmp_path / "out"
    counts = generate_shapes(src, images=N, seed=0)
    assert sorted(p.name for p in src.iterdir()) == ["images", "instances.json", "refs(unc).p"]
    refs = safe_load(src / "refs(unc).p")  # plain data only: loads through the restricted unpickler
    assert refs == pickle.loads((src / "refs(unc).p").read_bytes())  # the streamed pickle is a normal one
    assert len(refs) == counts["refs"] and set(refs[0]) == {
        "ref_id",
        "ann_id",
        "image_id",
        "split",
        "sentences",
        "category_id",
        "sent_ids",
        "file_name",
    }
    assert set(refs[0]["sentences"][0]) == {"sent", "tokens", "raw", "sent_id"}
    inst = json.loads((src / "instances.json").read_text())
    assert inst["categories"] == CATEGORIES and len(inst["images"]) == N
    anns = {a["id"]: a for a in inst["annotations"]}
    assert all(a["iscrowd"] == 0 and a["area"] > 0 and len(a["bbox"]) == 4 for a in anns.values())
    assert set(counts["splits"]) == {"train", "val", "testA", "testB"} and sum(counts["splits"].values()) == N

    supercategory = {c["id"]: c["supercategory"] for c in CATEGORIES}
    by_sentence = {}
    for r in refs:
        for s in r["sentences"]:
            by_sentence[(r["image_id"], s["sent"])] = r
    for split in ("train", "val"):
        summary = convert("refcoco", src, out, split, progress=False)
        assert summary["quarantined"] == 0 and summary["written"] == counts["splits"][split]
        assert verify_split(out / split).ok
        n_targets = 0
        for sample in ShardReader(out / split).samples():
            image_id = int(sample.image.id)
            for t in sample.targets:
                n_targets += 1
                ref = by_sentence[(image_id, t.texts[0])]
                assert ref["split"] == split and t.texts == [s["sent"] for s in ref["sentences"]]
                assert t.task == "res" and t.granularity == GRANULARITY[supercategory[ref["category_id"]]]
                assert np.array_equal(t.mask_array(), rle_to_mask(anns[ref["ann_id"]]["segmentation"]))
        assert n_targets == sum(r["split"] == split for r in refs)
    stats = ShardReader(out / "train").info["counts"]
    assert set(stats["by_granularity"]) == {"instance", "part", "group"}


def test_scene_sentences_are_unique_and_masks_disjoint():
    cfg = SynthConfig(images=30, seed=1)
    for i in range(30):
        scene = make_scene(i, cfg)
        texts = [t for _, _, _, sents in scene.targets for t in sents]
        assert len(texts) == len(set(texts)), texts  # one text never names two targets of an image
        assert all(1 <= len(sents) <= cfg.max_sentences for *_, sents in scene.targets)
        assert not (np.sum([o.mask for o in scene.objects], axis=0) > 1).any()
