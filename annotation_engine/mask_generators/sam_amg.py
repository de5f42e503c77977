"""segment-anything's automatic mask generation, same masks, without the work it throws away.

``ExactMaskGenerator`` takes ``SamAutomaticMaskGenerator``'s parameters and returns the
same masks (pixel-identical), scores (bit-identical floats) and order for the same
``Sam``, image and parameters. It uses segment-anything's model classes, ``SamPredictor``
(its point transform and ``set_image``) and the helpers of ``utils/amg.py`` as they are;
only the generation loop is ours. What segment-anything does, per crop and per batch of
``points_per_batch`` points, and what we do instead:

1. **Decoder** (``sam_decoder.py``). Stock calls ``predict_torch``, i.e.
   ``MaskDecoder.predict_masks`` for all prompts, with the image embedding repeated once
   per prompt, then upsamples every low-res mask. We call the decoder's own modules in the
   same order, but compute the first block's image side once (it is the same for every
   prompt), run the per-prompt image side a few prompts at a time (``decoder_chunk``:
   4 MB tensors per prompt stay in the CPU's cache instead of 256 MB ones going to
   memory), and run the mask half (``output_upscaling`` and the final product) only for
   prompts with at least one mask whose predicted IoU passes. The predicted IoU depends only on the
   transformer's IoU token, so it is the same. Ops whose rounding depends on how many
   rows they see (the token-side linears, the IoU head, the hypernetwork MLPs) run on all
   prompts of the batch, as in stock, and a chosen prompt's keys are laid out as a slice
   of stock's; ``sam_decoder`` says why every float stays the same, and tests compare
   IoUs and mask logits at SAM's decoder size bit for bit.
2. **Filter by predicted IoU before upsampling.** Stock upsamples all 3 x B masks to the
   image's size, then drops those with ``iou_pred <= pred_iou_thresh``. The IoU does not
   depend on the upsampling, so we drop them first (same comparison, same float32
   threshold) and upsample only the survivors with ``Sam.postprocess_masks`` itself.
   Bilinear interpolation is per channel, so a survivor's upsampled logits are the same.
3. **Stability, threshold, boxes, crop-edge filter**: the same functions
   (``calculate_stability_score``, ``> mask_threshold``, ``batched_mask_to_box``,
   ``is_box_near_crop_edge``) on the same upsampled logits, in the same order, but only
   for the survivors of step 2, and in chunks so that memory stays bounded.
4. **No RLE round trips.** Stock RLE-encodes each surviving mask (a per-mask loop that is
   quadratic in the batch) and decodes the NMS survivors again. Neither NMS nor the
   outputs read the RLE: NMS reads boxes and scores. We keep the binary masks, packed 8
   pixels a byte at the crop's size, and unpack only the final survivors. Packing is
   lossless, so the masks are the same.
5. **NMS, crops, small regions**: the same ``batched_nms`` calls on the same tensors
   (boxes, scores and categories in the same order and dtype), so the same kept indices
   in the same order; crop boxes, uncropping (zero padding), the between-crop NMS
   (``1 / box_area(crop_box)``) and ``min_mask_region_area`` (``remove_small_regions``
   holes then islands, boxes of every mask recomputed, NMS at
   ``max(box_nms_thresh, crop_nms_thresh)`` preferring unchanged masks, changed masks
   replaced) follow segment-anything's code step by step.

``generate_batch`` encodes the crops of several images ``encoder_batch`` at a time in one
``image_encoder`` call (what a GPU actor wants); the rest runs per image. A stacked
encoding is not bit-identical to one image at a time: the backend's matrix kernels round
differently for another batch size (on CPU the predicted IoUs moved by a few float32 ulp),
which can flip a pixel or a borderline threshold. So ``encoder_batch=None`` (the default)
stacks only on CUDA, where batching pays; on CPU it encodes one crop at a time through
``SamPredictor.set_image``, exactly as segment-anything does, and there is nothing to gain
from stacking there.

``precision="bf16"`` / ``"fp16"`` runs encoder and decoder under ``torch.autocast``:
faster on GPUs, not exact (masks change; see BENCHMARKS.md for their IoU with the exact
path). Post-processing always runs in float32.

Where the steps live: this module runs the loop (crops, encoder, batches of prompts and the
predicted-IoU filter); ``sam_decoder.py`` the decoder (step 1); ``sam_postprocess.py``
steps 2-5 after the IoU filter (upsampling, scores, packed masks, NMS between crops, small
regions) and the ``AmgMask`` records.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from annotation_engine.mask_generators.sam_decoder import decode_points
from annotation_engine.mask_generators.sam_postprocess import AmgMask, CropMasks, filter_masks, merge_crops

__all__ = ["PRECISIONS", "AmgMask", "ExactMaskGenerator"]

PRECISIONS = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}
_UPSAMPLE_CHUNK = 16  # masks upsampled at once: (16, H, W) float32 logits at a time


class ExactMaskGenerator:
    """SamAutomaticMaskGenerator's result, computed at the cost the result needs.

    Args:
        model (Sam): segment-anything's Sam.
        points_per_side, points_per_batch, pred_iou_thresh, stability_score_thresh,
        stability_score_offset, box_nms_thresh, crop_n_layers, crop_nms_thresh,
        crop_overlap_ratio, crop_n_points_downscale_factor, point_grids,
        min_mask_region_area: as in ``SamAutomaticMaskGenerator``.
        precision (str): fp32 (exact), bf16 or fp16 (autocast; not exact).
        encoder_batch (int | None): crops encoded per ``image_encoder`` call in
            ``generate_batch``; None: 1 on CPU (bit-exact), up to 8 on CUDA.
        decoder_chunk (int | None): prompts whose per-prompt decoder work runs together
            (same output for any value); None: on CPU 1 with one torch thread, 8 with
            more; on a GPU the whole batch.
    """

    def __init__(
        self,
        model: Any,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        precision: str = "fp32",
        encoder_batch: int | None = None,
        decoder_chunk: int | None = None,
    ):
        from segment_anything import SamPredictor
        from segment_anything.utils.amg import build_all_layer_point_grids

        if (points_per_side is None) == (point_grids is None):
            raise ValueError("give exactly one of points_per_side and point_grids")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if min_mask_region_area > 0:
            import cv2  # noqa: F401  (fail now, not after the encoder ran)
        self.point_grids = (
            build_all_layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
            if points_per_side is not None
            else point_grids
        )
        self.predictor = SamPredictor(model)
        self.model = model
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.min_mask_region_area = min_mask_region_area
        self.precision = precision
        if encoder_batch is None:
            encoder_batch = 1 if self.predictor.device.type == "cpu" else 8
        self.encoder_batch = max(1, int(encoder_batch))
        self.decoder_chunk = decoder_chunk
        self.stats: dict[str, int] = {}  # candidate counts of the last call (benchmarks read them)

    # ---- public API -------------------------------------------------------------------

    def generate(self, image: np.ndarray) -> list[AmgMask]:
        """(H, W, 3) uint8 RGB -> masks in segment-anything's order."""
        return self.generate_batch([image])[0]

    def generate_batch(self, images: list[np.ndarray]) -> list[list[AmgMask]]:
        """Several images: their crops are encoded ``encoder_batch`` at a time."""
        import torch
        from segment_anything.utils.amg import generate_crop_boxes

        plans = []  # (image index, crop box, layer) in segment-anything's crop order
        for i, image in enumerate(images):
            boxes, layers = generate_crop_boxes(image.shape[:2], self.crop_n_layers, self.crop_overlap_ratio)
            plans.extend((i, box, layer) for box, layer in zip(boxes, layers))
        crops: list[list[CropMasks]] = [[] for _ in images]
        self.stats = {"candidates": 0, "after_iou": 0, "kept_in_crops": 0}
        with torch.inference_mode():
            for start in range(0, len(plans), self.encoder_batch):
                chunk = plans[start : start + self.encoder_batch]
                cropped = [images[i][b[1] : b[3], b[0] : b[2], :] for i, b, _ in chunk]
                for (i, box, layer), feats, im in zip(chunk, self._encode(cropped), cropped):
                    self._set_features(feats, im.shape[:2])
                    crops[i].append(self._process_crop(im.shape[:2], box, layer, images[i].shape[:2]))
                    self.predictor.reset_image()
            return [
                merge_crops(c, image.shape[:2], self.crop_nms_thresh, self.box_nms_thresh, self.min_mask_region_area)
                for c, image in zip(crops, images)
            ]

    # ---- encoder ----------------------------------------------------------------------

    def _autocast(self):
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.predictor.device.type, dtype=getattr(torch, PRECISIONS[self.precision]))

    def _encode(self, crops: list[np.ndarray]) -> list[Any]:
        """Image embeddings (1, C, h, w) per crop; one encoder call for all of them.

        A single crop goes through ``SamPredictor.set_image`` exactly as segment-anything's
        generator does; several are transformed the same way and stacked.
        """
        import torch

        if len(crops) == 1:
            with self._autocast():
                self.predictor.set_image(crops[0])
            feats = [self.predictor.features]
            self.predictor.reset_image()
            return feats
        model, tf = self.model, self.predictor.transform
        batch = []
        for im in crops:  # SamPredictor.set_image's transform and Sam.preprocess, per image
            t = torch.as_tensor(tf.apply_image(im), device=self.predictor.device).permute(2, 0, 1).contiguous()
            batch.append(model.preprocess(t[None]))
        with self._autocast():
            feats = model.image_encoder(torch.cat(batch))
        return [feats[j : j + 1] for j in range(len(crops))]

    def _set_features(self, feats: Any, size: tuple[int, int]) -> None:
        """What ``SamPredictor.set_torch_image`` leaves behind, for precomputed features."""
        p = self.predictor
        p.original_size = tuple(size)
        p.input_size = p.transform.get_preprocess_shape(size[0], size[1], self.model.image_encoder.img_size)
        p.features = feats
        p.is_image_set = True

    # ---- one crop ---------------------------------------------------------------------

    def _process_crop(
        self, im_size: tuple[int, int], crop_box: list[int], layer: int, orig_size: tuple[int, int]
    ) -> CropMasks:
        import torch
        from segment_anything.utils.amg import batch_iterator, uncrop_boxes_xyxy, uncrop_points
        from torchvision.ops.boxes import batched_nms

        points_for_image = self.point_grids[layer] * np.array(im_size)[None, ::-1]
        packed: list[np.ndarray] = []
        ious, stabs, boxes, pts = [], [], [], []
        for (points,) in batch_iterator(self.points_per_batch, points_for_image):
            p, i, s, b, q = self._process_batch(points, im_size, crop_box, orig_size)
            packed += p
            ious.append(i)
            stabs.append(s)
            boxes.append(b)
            pts.append(q)
        iou_preds, stability, boxes_t = torch.cat(ious), torch.cat(stabs), torch.cat(boxes)
        # duplicates within the crop: segment-anything's call on the same tensors
        keep = batched_nms(boxes_t.float(), iou_preds, torch.zeros(len(boxes_t)), iou_threshold=self.box_nms_thresh)
        keep_list = keep.tolist()
        self.stats["kept_in_crops"] += len(keep_list)
        return CropMasks(
            [packed[k] for k in keep_list],
            tuple(im_size),
            list(crop_box),
            iou_preds[keep],
            stability[keep],
            uncrop_boxes_xyxy(boxes_t[keep], crop_box),
            uncrop_points(torch.cat(pts)[keep.cpu()], crop_box),
        )

    def _decode(self, points: np.ndarray, im_size: tuple[int, int]):
        """Predicted IoUs (B, 3) of every prompt, and a function giving the low-res mask
        logits (k, 3, 256, 256) of chosen prompts (``sam_decoder.decode_points``)."""
        return decode_points(self.model, self.predictor, points, im_size, self._chunk(), self._autocast)

    def _chunk(self) -> int:
        """Prompts whose per-prompt decoder work runs together (see ``sam_decoder``). One
        prompt keeps each op's tensors (4 MB) in cache; with several threads every op ends
        in an OpenMP barrier, which on a busy machine can wait a whole time slice, so
        there the ops are made larger."""
        import torch

        if self.decoder_chunk is not None:
            return self.decoder_chunk
        if self.predictor.device.type != "cpu":  # a GPU wants large ops
            return self.points_per_batch
        return 1 if torch.get_num_threads() == 1 else 8

    def _process_batch(
        self, points: np.ndarray, im_size: tuple[int, int], crop_box: list[int], orig_size: tuple[int, int]
    ):
        """One batch of prompts -> (packed masks, iou_preds, stability, boxes, points) of survivors."""
        import torch

        iou_pred, masks_of = self._decode(points, im_size)
        n_out = iou_pred.shape[1]
        iou_flat = iou_pred.flatten(0, 1)  # prompt-major, as segment-anything flattens
        if self.pred_iou_thresh > 0.0:
            idx = torch.nonzero(iou_flat > self.pred_iou_thresh)[:, 0]
        else:
            idx = torch.arange(len(iou_flat), device=iou_flat.device)
        self.stats["candidates"] += len(iou_flat)
        self.stats["after_iou"] += len(idx)
        prompt_of = (idx // n_out).cpu()
        prompts = torch.unique(prompt_of).tolist()  # sorted: prompts that keep a mask
        points_t = torch.as_tensor(points)  # (B, 2) float64, as segment-anything keeps them
        out: list[list[Any]] = [[], [], [], [], []]  # packed masks, ious, stabilities, boxes, points
        chunk = self._chunk()
        for start in range(0, len(prompts), chunk):  # a few prompts' masks at a time
            group = prompts[start : start + chunk]
            lo, hi = torch.searchsorted(prompt_of, torch.tensor([group[0], group[-1] + 1])).tolist()
            rows = prompt_of[lo:hi] - group[0]  # survivors of these prompts, in flattened order
            sel = torch.tensor(group) - group[0]
            row = torch.searchsorted(sel, rows)
            low = masks_of(group)[row, (idx[lo:hi] % n_out).cpu()]  # (m, 256, 256)
            for part in range(0, hi - lo, _UPSAMPLE_CHUNK):
                span = slice(lo + part, min(lo + part + _UPSAMPLE_CHUNK, hi))
                filter_masks(
                    low[part : part + _UPSAMPLE_CHUNK],
                    iou_flat[idx[span]],
                    points_t[prompt_of[span]],
                    model=self.model,
                    input_size=self.predictor.input_size,
                    crop_size=self.predictor.original_size,
                    crop_box=crop_box,
                    orig_size=orig_size,
                    stability_score_offset=self.stability_score_offset,
                    stability_score_thresh=self.stability_score_thresh,
                    out=out,
                )
        if not out[1]:  # nothing survived: empty tensors of the right dtypes
            dev = iou_flat.device
            return (
                [],
                iou_flat[:0],
                torch.zeros(0, device=dev),
                torch.zeros(0, 4, dtype=torch.int64, device=dev),
                points_t[:0],
            )
        return out[0], torch.cat(out[1]), torch.cat(out[2]), torch.cat(out[3]), torch.cat(out[4])
