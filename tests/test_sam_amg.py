"""Our SAM generation loop vs segment-anything's SamAutomaticMaskGenerator, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotation_engine.mask_generators.sam import build_sam_tiny
from annotation_engine.mask_generators.sam_amg import ExactMaskGenerator


def _model():
    """The tiny random SAM, made to give masks worth comparing.

    Random weights give checkerboard logits within +-1 (stability 0 everywhere) and one
    output index whose IoU bias beats the others. So: every 2x2 kernel of the decoder's
    transposed convolutions is tied (logits follow the image's regions), the hypernetwork
    outputs are scaled x100 (logits of a few units: stability spreads over [0, 1]) and the
    IoU head's last bias is zeroed (the three outputs compete). Still random weights.
    """
    sam = build_sam_tiny(seed=0)
    with torch.no_grad():
        dec = sam.mask_decoder
        for conv in (dec.output_upscaling[0], dec.output_upscaling[3]):
            conv.weight[:] = conv.weight[:, :, :1, :1]
        for mlp in dec.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(100.0)
        dec.iou_prediction_head.layers[-1].bias.zero_()
    return sam


def _image(h: int, w: int, seed: int, cells: int = 7) -> np.ndarray:
    """(h, w, 3) uint8 Voronoi cells of random colours."""
    rng = np.random.default_rng(seed)
    cy, cx = rng.integers(0, h, cells), rng.integers(0, w, cells)
    yy, xx = np.mgrid[:h, :w]
    label = np.argmin((yy[..., None] - cy) ** 2 + (xx[..., None] - cx) ** 2, axis=-1)
    return rng.integers(0, 256, (cells, 3)).astype(np.uint8)[label]


def _corner_blobs(h: int, w: int, seed: int) -> np.ndarray:
    """(h, w, 3) uint8: small discs near the corners and the centre of a plain background,
    so that masks of the first crop layer's crops stay clear of the crops' inner edges."""
    rng = np.random.default_rng(seed)
    image = np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for cy, cx in [(0.15, 0.15), (0.15, 0.85), (0.85, 0.15), (0.85, 0.85), (0.5, 0.5)]:
        r = rng.integers(6, 14)
        image[(yy - cy * h) ** 2 + (xx - cx * w) ** 2 < r * r] = rng.integers(0, 256, 3)
    return image


def _thresholds(sam, image: np.ndarray, points_per_side: int, offset: float | None = 1.0) -> tuple[float, ...]:
    """Thresholds from this model's own scores on the image, with segment-anything's predictor
    on a ``points_per_side`` grid: pred_iou_thresh at the 70th percentile of the predicted IoUs
    (~30% survive), stability_score_thresh at the 25th percentile of the survivors' stability.

    ``offset=None`` also picks stability_score_offset: the median |low-res logit| (random
    vit_b logits stay within +-0.5, so SAM's offset of 1 gives stability 0 everywhere).

    Returns:
        (pred_iou_thresh, stability_score_thresh, stability_score_offset)
    """
    from segment_anything import SamPredictor
    from segment_anything.utils.amg import build_point_grid, calculate_stability_score

    h, w = image.shape[:2]
    predictor = SamPredictor(sam)
    with torch.inference_mode():
        predictor.set_image(image)
        pts = torch.as_tensor(predictor.transform.apply_coords(build_point_grid(points_per_side) * [[w, h]], (h, w)))
        logits, iou, low = predictor.predict_torch(
            pts[:, None, :], torch.ones(len(pts), 1, dtype=torch.int), multimask_output=True, return_logits=True
        )
        offset = float(low.abs().median()) if offset is None else offset
        stab = calculate_stability_score(logits.flatten(0, 1), 0.0, offset).numpy()
    iou = iou.flatten().numpy()
    iou_t = float(np.quantile(iou, 0.7))
    return iou_t, float(np.nanquantile(stab[iou > iou_t], 0.25)), offset


def _xyxy(xywh: list) -> list[int]:
    x, y, w, h = (int(v) for v in xywh)
    return [x, y, x + w, y + h]


def _assert_same(stock: list[dict], ours: list) -> None:
    """Every field of every record equal, floats bit for bit, in the same order."""
    assert len(ours) == len(stock)
    for i, (a, b) in enumerate(zip(stock, ours)):
        assert np.array_equal(a["segmentation"], b.mask), f"mask {i} differs"
        assert a["area"] == int(b.mask.sum()), i
        assert a["predicted_iou"] == b.predicted_iou, i
        # an empty mask has stability 0/0 = nan in both (kept when the threshold is 0)
        assert (
            a["stability_score"] == b.stability_score or np.isnan(a["stability_score"]) and np.isnan(b.stability_score)
        ), i
        assert _xyxy(a["bbox"]) == [int(v) for v in b.box], i
        assert _xyxy(a["crop_box"]) == [int(v) for v in b.crop_box], i
        assert a["point_coords"] == [b.point_coords], i


CASES = [  # (image, h, w, seed, points_per_side, crop_n_layers, min_mask_region_area, box/crop NMS threshold)
    (_image, 96, 128, 1, 8, 0, 0, 1.0),
    (_image, 120, 90, 2, 6, 0, 100, 1.0),
    (_image, 100, 140, 3, 8, 0, 0, 0.7),
    (_corner_blobs, 160, 200, 3, 6, 1, 0, 1.0),
    (_corner_blobs, 200, 150, 0, 6, 1, 100, 1.0),
    (_corner_blobs, 200, 150, 0, 4, 1, 100, 0.7),
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: see conftest.one_torch_thread."""


@pytest.fixture(scope="module")
def sam():
    return _model()


@pytest.mark.parametrize("make,h,w,seed,pps,crops,min_area,nms", CASES)
def test_same_masks_as_segment_anything(sam, make, h, w, seed, pps, crops, min_area, nms):
    """Identical masks, scores and order; thresholds from the model's own scores."""
    from segment_anything import SamAutomaticMaskGenerator

    image = make(h, w, seed)
    iou_t, stab_t, _ = _thresholds(sam, image, pps)
    params = dict(
        points_per_side=pps,
        points_per_batch=16,
        pred_iou_thresh=iou_t,
        stability_score_thresh=stab_t,
        box_nms_thresh=nms,
        crop_nms_thresh=nms,
        crop_n_layers=crops,
        min_mask_region_area=min_area,
    )
    with torch.inference_mode():
        stock = SamAutomaticMaskGenerator(sam, **params).generate(image)
    ours = ExactMaskGenerator(sam, **params).generate(image)
    _assert_same(stock, ours)
    assert len(stock) >= (5 if nms == 1.0 else 1)  # the comparison is not vacuous
    if crops and nms == 1.0:  # masks of the smaller crops (padded back into the image) are compared too
        assert any(a["crop_box"] != [0, 0, w, h] for a in stock)


def test_batch_equals_one_by_one(sam):
    """generate_batch (CPU default: one encoder call per crop) == generate per image."""
    images = [_image(96, 128, 7), _image(80, 80, 8)]
    gen = ExactMaskGenerator(
        sam, points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0, crop_n_layers=1
    )
    batch = gen.generate_batch(images)
    for image, masks in zip(images, batch):
        one = gen.generate(image)
        assert len(one) == len(masks) > 0
        assert all(np.array_equal(a.mask, b.mask) and a.predicted_iou == b.predicted_iou for a, b in zip(one, masks))


def test_stacked_encoder_close_to_exact(sam):
    """Stacking crops in one encoder call (the GPU path) moves embeddings by rounding only."""
    images = [_image(96, 128, 9), _image(96, 128, 10), _image(64, 96, 11)]
    kw = dict(points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    exact = ExactMaskGenerator(sam, **kw).generate_batch(images)
    stacked = ExactMaskGenerator(sam, encoder_batch=3, **kw).generate_batch(images)
    for a, b in zip(exact, stacked):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert abs(x.predicted_iou - y.predicted_iou) < 1e-4
            assert (x.mask != y.mask).mean() < 1e-3


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_is_close_not_exact(sam, precision):
    """precision bf16/fp16 (autocast) gives other floats: with every candidate kept, the same
    records, predicted IoUs within 0.01, but not the same masks (the tiny random model's
    logits sit near the threshold, so many masks change; BENCHMARKS.md has IoU figures)."""
    image = _image(96, 128, 1)
    kw = dict(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    exact = ExactMaskGenerator(sam, **kw).generate(image)
    mixed = ExactMaskGenerator(sam, precision=precision, **kw).generate(image)
    assert len(mixed) == len(exact) == 192
    assert max(abs(a.predicted_iou - b.predicted_iou) for a, b in zip(exact, mixed)) < 0.01
    assert not all(np.array_equal(a.mask, b.mask) for a, b in zip(exact, mixed))


@pytest.mark.parametrize("threads", [1, 2])
def test_shared_image_transformer_is_bit_identical_at_sams_decoder_size(threads):
    """The decoder's transformer with the first block's image side computed once gives the
    floats of segment-anything's call on the image repeated per prompt, at the size every
    SAM's decoder has (256 channels, 8 heads, 64 x 64 image tokens), on 1 and 2 threads."""
    from segment_anything.modeling import PromptEncoder, TwoWayTransformer

    from annotation_engine.mask_generators.sam_decoder import two_way_transformer

    torch.manual_seed(0)
    t = TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8).eval()
    pe = PromptEncoder(
        embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024), mask_in_chans=16
    ).get_dense_pe()
    image, tokens = torch.randn(1, 256, 64, 64), torch.randn(5, 7, 256)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            hs, keys = t(image.repeat(5, 1, 1, 1), pe.repeat(5, 1, 1, 1), tokens)
            ours = {chunk: two_way_transformer(t, image, pe, tokens, chunk) for chunk in (1, 2, 5)}
    finally:
        torch.set_num_threads(before)
    for chunk, (ours_hs, ours_keys) in ours.items():
        assert torch.equal(ours_hs, hs) and torch.equal(torch.cat(ours_keys), keys), chunk


def test_bad_parameters(sam):
    with pytest.raises(ValueError, match="precision"):
        ExactMaskGenerator(sam, precision="fp8")
    with pytest.raises(ValueError, match="exactly one"):
        ExactMaskGenerator(sam, points_per_side=None)


class _MemoEncoder(torch.nn.Module):
    """An image encoder that runs once per distinct input: stock and ours encode the same
    image the same way (``SamPredictor.set_image``), and vit_b's encoder is the slow part."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder, self.img_size = encoder, encoder.img_size
        self.runs, self._last = 0, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._last is None or not torch.equal(self._last[0], x):
            self.runs += 1
            self._last = (x.clone(), self.encoder(x))
        return self._last[1].clone()


@pytest.fixture(scope="module")
def vit_b():
    """segment-anything's vit_b with random weights (seed 0)."""
    from annotation_engine.mask_generators.sam import SAM_BUILDERS

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SAM_BUILDERS["vit_b"]().eval()


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_decoder_bit_identical_at_vit_b_size(vit_b, threads):
    """Our split decoder gives segment-anything's MaskDecoder floats bit for bit: the predicted
    IoUs of every prompt, and the mask logits of any selection of prompts (one prompt of a
    batch, a few, all; a batch of one), whatever the number of prompts run together."""
    torch.manual_seed(1)
    feats, size = torch.randn(1, 256, 64, 64), (768, 1024)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for b, chunk in [(10, 1), (10, 3), (10, 8), (1, 1)]:
            gen = ExactMaskGenerator(vit_b, points_per_side=4, decoder_chunk=chunk)
            gen._set_features(feats, size)
            points = np.random.default_rng(b + chunk).uniform(0, 1, (b, 2)) * [size[1], size[0]]
            with torch.inference_mode():
                pts = torch.as_tensor(gen.predictor.transform.apply_coords(points, size))
                sparse, dense = vit_b.prompt_encoder(
                    points=(pts[:, None], torch.ones(b, 1, dtype=torch.int)), boxes=None, masks=None
                )
                low, iou = vit_b.mask_decoder(feats, vit_b.prompt_encoder.get_dense_pe(), sparse, dense, True)
                ours_iou, masks_of = gen._decode(points, size)
                assert torch.equal(ours_iou, iou), (b, chunk)
                for sel in ([0], [b - 1], [1, 2, 5], list(range(b))):
                    if max(sel) < b:
                        assert torch.equal(masks_of(sel), low[sel]), (b, chunk, sel)
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_same_masks_as_segment_anything_on_vit_b(vit_b):
    """segment-anything's vit_b (random weights, seed 0) on the astronaut photo: tens of masks
    (box NMS 1.0 keeps every candidate that passes), stability threshold above 0, every field
    of every record equal, at torch's default thread count (2 here; what users run)."""
    import skimage.data
    from PIL import Image
    from segment_anything import SamAutomaticMaskGenerator

    sam = vit_b
    memo = sam.image_encoder = _MemoEncoder(sam.image_encoder)
    image = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((512, 384), Image.BICUBIC))
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the module runs on one thread; this is vit_b at the default
    try:
        iou_t, stab_t, offset = _thresholds(sam, image, 4, offset=None)
        params = dict(
            points_per_side=7,
            points_per_batch=20,
            pred_iou_thresh=iou_t,
            stability_score_thresh=stab_t,
            stability_score_offset=offset,
            box_nms_thresh=1.0,
        )
        with torch.inference_mode():
            stock = SamAutomaticMaskGenerator(sam, **params).generate(image)
        ours = ExactMaskGenerator(sam, **params).generate(image)
    finally:
        torch.set_num_threads(before)
    assert memo.runs == 1  # all three encoded the same input
    assert stab_t > 0.0
    assert len(stock) >= 30, len(stock)  # 49 of 147 candidates here; the comparison is not vacuous
    _assert_same(stock, ours)
