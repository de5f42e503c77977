"""Training data: mixing ratios, rank/worker splits, no hang with few shards, flip rule, alignment."""

import itertools
import json
from collections import Counter

import numpy as np
import pytest
import torch
from damage_fixtures import BROKEN_KINDS, write_broken_targets_split
from torch.utils.data import DataLoader

from common.errors import ShardError
from shards.converters.convert import convert
from shards.integrity import worker_message
from shards.layout import resolve_split_dir
from shards.reader import ChecksumError, ShardReader
from shards.synth import generate_shapes
from unilseg.data.augment import AugmentConfig, augment_sample, mentions_left_right, swap_left_right_words
from unilseg.data.dataset import SKIP_BASE, SkipCounter, TargetDataset
from unilseg.data.mixing import parse_data_spec, weighted_mix
from unilseg.data.split import plan_epoch
from unilseg.model import build_tokenizer, load_preset
from unilseg.transforms import letterbox_image, letterbox_mask

SIZE = 64


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Synthetic referring set: train in 8 shards (6 images each), val in 2 shards."""
    root = tmp_path_factory.mktemp("synth")
    generate_shapes(root / "src", images=60, seed=0, size=SIZE)
    for split in ("train", "val"):
        convert("refcoco", root / "src", root / "out", split, max_count=6, progress=False)
    return root / "out"


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(load_preset("unilseg-tiny"))


def _all_targets(split_dir):
    return {(s.key, i) for s, i, _ in ShardReader(split_dir).targets(decode_images=False)}


def _read_rank(ds, num_workers):
    loader = DataLoader(ds, batch_size=None, num_workers=num_workers)
    return [(m["key"], m["target"]) for *_, m in loader]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("world,workers", [(2, 2), (3, 2), (2, 3)])
def test_rank_worker_split_covers_every_target_once(synth, tokenizer, world, workers):
    """8 shards over 4 readers (whole shards), 6 readers (shards >= readers, uneven) and, for
    val's 2 shards, fewer shards than readers (split by sample index): each target once."""
    for split in ("train", "val"):
        want = _all_targets(synth / split)
        got = []
        for rank in range(world):
            ds = TargetDataset(
                [(synth / split, 1.0)],
                tokenizer,
                SIZE,
                epochs=1,
                seed=3,
                rank=rank,
                world_size=world,
                return_meta=True,
                shuffle_buffer=16,
            )
            got += _read_rank(ds, workers)
        assert len(got) == len(want) and set(got) == want, split


def test_plan_epoch_modes():
    urls = [f"s{i}.tar" for i in range(5)]
    plans = [plan_epoch(urls, 0, 1, r, 2, w, 2) for r in range(2) for w in range(2)]
    assert not any(p.by_sample for p in plans)
    assert sorted(u for p in plans for u in p.urls) == urls  # a partition of the shards
    assert plan_epoch(urls, 0, 1, 0, 1, 0, 1).urls != plan_epoch(urls, 1, 1, 0, 1, 0, 1).urls  # reshuffled
    few = [plan_epoch(urls[:2], 0, 1, r, 3, 0, 1) for r in range(3)]
    assert all(p.by_sample and len(p.urls) == 2 for p in few)
    assert [[i for i in range(9) if p.keeps(i)] for p in few] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


@pytest.mark.timeout(60)
def test_fewer_shards_than_readers_streams_without_hanging(synth, tokenizer):
    """val has 2 shards; 2 ranks x 2 workers = 4 readers: every rank keeps producing (endless)."""
    for rank in range(2):
        ds = TargetDataset(
            [(synth / "val", 1.0)],
            tokenizer,
            SIZE,
            augment=AugmentConfig(),
            rank=rank,
            world_size=2,
            return_meta=True,
            shuffle_buffer=8,
        )
        loader = DataLoader(ds, batch_size=4, num_workers=2)
        batches = list(itertools.islice(iter(loader), 30))  # > one epoch of this rank's share
        assert len(batches) == 30
        images, ids, masks, _ = batches[0]
        assert images.shape == (4, 3, SIZE, SIZE) and ids.dtype == torch.int64 and masks.shape == (4, SIZE, SIZE)


def test_weighted_mix_ratios():
    rng = np.random.default_rng(0)
    draws = list(itertools.islice(weighted_mix([itertools.repeat("a"), itertools.repeat("b")], [3, 1], rng), 4000))
    assert abs(draws.count("a") / 4000 - 0.75) < 0.03
    # finite streams: everything comes out, then the mix ends
    assert sorted(weighted_mix([range(3), range(10, 12)], [1, 5], rng)) == [0, 1, 2, 10, 11]
    with pytest.raises(ValueError):
        list(weighted_mix([range(3)], [0], rng))


def test_dataset_mixes_sources_by_weight(synth, tokenizer):
    ds = TargetDataset(
        [(synth / "train", 1.0), (synth / "val", 4.0)], tokenizer, SIZE, seed=1, return_meta=True, shuffle_buffer=32
    )
    sources = Counter(m["source"] for *_, m in itertools.islice(iter(ds), 600))
    assert abs(sources[1] / 600 - 0.8) < 0.06


def test_data_spec_and_split_resolution(synth):
    assert parse_data_spec("data/x:2.5") == ("data/x", 2.5)
    assert parse_data_spec("data/x") == ("data/x", 1.0)
    assert parse_data_spec("s3:bucket") == ("s3:bucket", 1.0)  # not a number: part of the path
    with pytest.raises(ValueError):
        parse_data_spec("data/x:0")
    assert resolve_split_dir(synth) == synth / "train"  # a dataset dir means its train split
    assert resolve_split_dir(synth / "val") == synth / "val"
    with pytest.raises(FileNotFoundError, match="not a shard split"):
        resolve_split_dir(synth / "nope")


def test_flip_rule():
    assert mentions_left_right(["the circle on the left"]) and mentions_left_right(["x", "the RIGHTMOST star"])
    assert not mentions_left_right(["the bright red square", "all circles", "the top tree"])
    rng = np.random.default_rng(0)
    img = np.zeros((40, 60, 3), np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:20, 5:15] = 1
    always = AugmentConfig(flip_prob=1.0)
    for texts, expect in ((["the square left of the tree"], False), (["a square", "the red square"], True)):
        flips = {augment_sample(img, mask, texts, SIZE, rng, always)[2] for _ in range(10)}
        assert flips == {expect}


def test_flip_with_left_right_swapped_in_the_text(synth, tokenizer):
    assert swap_left_right_words("the star on the left") == "the star on the right"
    assert swap_left_right_words("Left of the RIGHTMOST tree, left-hand") == "Right of the LEFTMOST tree, right-hand"
    assert (
        swap_left_right_words("the bright upright square above the circle")
        == "the bright upright square above the circle"
    )
    rng = np.random.default_rng(0)
    img = np.zeros((40, 60, 3), np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:20, 5:15] = 1  # on the left
    swap = AugmentConfig(flip_prob=1.0, swap_left_right=True, min_scale=1.0, max_scale=1.0, translate=0.0)
    _, m, flipped = augment_sample(img, mask, ["the square on the left"], SIZE, rng, swap)
    assert flipped and m[:, SIZE // 2 :].sum() > 0 and m[:, : SIZE // 2].sum() == 0  # now on the right

    # in the training stream the text the model sees is the swapped one, with its ids
    ds = TargetDataset(
        [(synth / "val", 1.0)],
        tokenizer,
        SIZE,
        epochs=1,
        shuffle=False,
        random_text=False,
        return_meta=True,
        augment=swap,
    )
    seen = 0
    for _x, ids, _m, meta in ds:
        sample = next(s for s in ShardReader(synth / "val").samples() if s.key == meta["key"])
        original = sample.targets[meta["target"]].texts[0]
        assert meta["flipped"] and meta["text"] == swap_left_right_words(original)
        torch.testing.assert_close(ids, tokenizer(meta["text"])[0])
        seen += mentions_left_right([original])
    assert seen > 0  # texts with left/right were flipped too


@pytest.mark.parametrize("seed", range(6))
def test_augment_keeps_image_and_mask_aligned(seed):
    """The image is red exactly where the mask is: after augmentation the red pixels are the mask."""
    rng = np.random.default_rng(seed)
    h, w = 50 + 7 * seed, 80 - 5 * seed
    mask = np.zeros((h, w), np.uint8)
    y0, x0 = int(rng.integers(0, h - 20)), int(rng.integers(0, w // 2))
    mask[y0 : y0 + 18, x0 : x0 + 25] = 1
    img = np.where(mask[..., None] > 0, [230, 20, 20], [20, 20, 230]).astype(np.uint8)
    cfg = AugmentConfig(min_scale=0.5, max_scale=1.3, flip_prob=0.5)
    x, m, _ = augment_sample(img, mask, ["the red one"], SIZE, rng, cfg)
    assert x.shape == (3, SIZE, SIZE) and x.dtype == np.float32 and m.shape == (SIZE, SIZE)
    red = x[0] > x[2] + 0.5  # normalised: red channel well above blue
    assert m.sum() > 0 and set(np.unique(m)) <= {0, 1}
    iou = (red & (m > 0)).sum() / (red | (m > 0)).sum()
    assert iou > 0.9, iou
    # never cropped: at most zoomed out by max_scale (area / max_scale^2 after letterboxing)
    assert m.sum() >= mask.sum() * (SIZE / max(h, w) / cfg.max_scale) ** 2 * 0.85


def test_no_augment_matches_inference_letterbox_and_null_masks(synth, tokenizer, tmp_path):
    ds = TargetDataset(
        [(synth / "val", 1.0)], tokenizer, SIZE, epochs=1, shuffle=False, random_text=False, return_meta=True
    )
    x, ids, m, meta = next(iter(ds))
    sample = next(s for s in ShardReader(synth / "val").samples() if s.key == meta["key"])
    target = sample.targets[meta["target"]]
    torch.testing.assert_close(x, torch.from_numpy(letterbox_image(sample.rgb, SIZE)[0]))
    torch.testing.assert_close(m, torch.from_numpy(letterbox_mask(target.mask_array(), SIZE).astype(np.float32)))
    torch.testing.assert_close(ids, tokenizer(target.texts[0])[0])

    # a no-target expression trains on an empty mask
    from shards.format import Target
    from unilseg.data.dataset import _Entry

    entry = _Entry(0, sample.key, 0, sample.image_bytes, Target(["nothing here"], None, "gres", "instance", "t"))
    _, _, empty, _ = ds._make_item(entry, np.random.default_rng(0))
    assert empty.shape == (SIZE, SIZE) and empty.sum() == 0


def test_corrupt_shard_fails_checksum(synth, tokenizer, tmp_path):
    import shutil

    bad = tmp_path / "val"
    shutil.copytree(synth / "val", bad)
    info = json.loads((bad / "dataset.json").read_text())
    shard = bad / info["shards"][0]["name"]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # flip a bit in the end padding: tar still parses, the hash differs
    shard.write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        list(TargetDataset([(bad, 1.0)], tokenizer, SIZE, epochs=1))


def test_skip_limit_is_a_fraction_of_at_least_skip_base():
    counter = SkipCounter(0.01)
    for _ in range(SKIP_BASE // 100):  # 1 % of the base: the first 10 skips never stop a run
        counter.add(True, "split", "k target 0: bad")
    with pytest.raises(ShardError, match=r"^split: 11 of the 11 targets read were broken and skipped.*last: k9"):
        counter.add(True, "split", "k9 target 0: bad")
    counter = SkipCounter(0.01)
    for _ in range(3000):
        counter.add(False)
    for _ in range(30):  # 1 % of 3030 read
        counter.add(True)
    assert counter.counts() == (3030, 30)
    with pytest.raises(ShardError, match="31 of the 3031"):
        counter.add(True)
    with pytest.raises(ShardError, match="1 of the 1 targets"):
        SkipCounter(0.0).add(True)  # none tolerated
    unbounded = SkipCounter(None)
    for _ in range(5000):
        unbounded.add(True)
    assert unbounded.counts() == (5000, 5000)


@pytest.mark.timeout(90)
def test_an_all_broken_split_stops_the_endless_stream(tokenizer, tmp_path):
    """Every target broken (undecodable images, images larger than their masks): the endless
    stream of a DataLoader process stops with one line after 1 % of SKIP_BASE, instead of
    skipping forever."""
    write_broken_targets_split(tmp_path / "bad", 12, {i: BROKEN_KINDS[i % 2] for i in range(12)})
    ds = TargetDataset([(tmp_path / "bad", 1.0)], tokenizer, SIZE, max_skipped_fraction=0.01, shuffle_buffer=4)
    with pytest.raises(ShardError) as err:
        next(iter(DataLoader(ds, batch_size=2, num_workers=1)))
    line = worker_message(err.value)
    assert (
        line.startswith(f"{tmp_path / 'bad'}: 11 of the 11 targets read were broken and skipped") and "\n" not in line
    )
    assert "max_skipped_fraction 0.01" in line and " target 0: " in line
    assert ds.skips.counts() == (11, 11)  # the DataLoader process counted into the rank's shared counter


def test_broken_targets_are_skipped_and_counted_across_loader_processes(tokenizer, tmp_path):
    keys = write_broken_targets_split(tmp_path / "few", 30, {3: "image", 17: "size"})
    ds = TargetDataset(
        [(tmp_path / "few", 1.0)], tokenizer, SIZE, epochs=1, return_meta=True, max_skipped_fraction=0.01
    )
    got = [m["key"] for *_, m in DataLoader(ds, batch_size=None, num_workers=2)]
    assert sorted(got) == sorted(k for i, k in enumerate(keys) if i not in (3, 17))
    assert ds.skips.counts() == (30, 2)  # both processes' reads and skips
