"""The exact generation loop's masks after the decoder: filtered, merged, full size.

Steps 2-5 of ``sam_amg``'s docstring after the predicted-IoU filter, as functions:
``filter_masks`` upsamples a batch's IoU survivors and scores, thresholds, boxes and
edge-filters them as segment-anything does, keeping the binary masks packed 8 pixels a
byte (``CropMasks`` holds a crop's); ``merge_crops`` runs the between-crop NMS and the
small-region post-processing and unpacks the final survivors into ``AmgMask`` records.
Every comparison, NMS call and tensor is segment-anything's, in its order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class AmgMask:
    """One generated mask, as segment-anything's records have it.

    Attributes:
        mask (np.ndarray): (H, W) bool, the whole image.
        predicted_iou (float): the model's IoU prediction.
        stability_score (float): IoU of the mask thresholded at +-stability_score_offset.
        box (list[int]): XYXY box in the image.
        crop_box (list[int]): XYXY crop it was generated in.
        point_coords (list[float]): [x, y] of the point prompt that gave it, in the image.
    """

    mask: np.ndarray
    predicted_iou: float
    stability_score: float
    box: list[int]
    crop_box: list[int]
    point_coords: list[float]


@dataclass
class CropMasks:
    """Survivors of one crop: packed masks at the crop's size plus their tensors."""

    packed: list[np.ndarray]  # per mask: np.packbits of the (h, w) crop-frame mask
    shape: tuple[int, int]  # (h, w) of the crop
    crop_box: list[int]
    iou_preds: Any  # (N,) float32 tensor
    stability: Any  # (N,) float32 tensor
    boxes: Any  # (N, 4) int64 tensor, image frame after uncropping
    points: Any  # (N, 2) float64 tensor: each mask's point prompt, image frame


def filter_masks(
    low: Any,
    iou: Any,
    pt: Any,
    *,
    model: Any,
    input_size: tuple[int, int],
    crop_size: tuple[int, int],
    crop_box: list[int],
    orig_size: tuple[int, int],
    stability_score_offset: float,
    stability_score_thresh: float,
    out: list[list[Any]],
) -> None:
    """Low-res logits (m, 256, 256) of IoU survivors -> upsampled, scored, thresholded,
    boxed and edge-filtered as segment-anything does; survivors appended to ``out``.

    Args:
        low (Tensor): (m, 256, 256) low-res mask logits.
        iou (Tensor): (m,) their predicted IoUs.
        pt (Tensor): (m, 2) their point prompts in the image.
        model (Sam): gives ``postprocess_masks`` and ``mask_threshold``.
        input_size, crop_size: the crop's size after the predictor's transform and before.
        crop_box (list[int]): XYXY crop in the image.
        orig_size (tuple[int, int]): (H, W) of the image.
        stability_score_offset, stability_score_thresh: as in ``SamAutomaticMaskGenerator``.
        out (list[list]): packed masks, IoUs, stabilities, boxes, points, appended to.
    """
    import torch
    from segment_anything.utils.amg import batched_mask_to_box, calculate_stability_score, is_box_near_crop_edge

    mt = model.mask_threshold
    h, w = orig_size
    logits = model.postprocess_masks(low[:, None], input_size, crop_size)[:, 0]
    stab = calculate_stability_score(logits, mt, stability_score_offset)
    if stability_score_thresh > 0.0:
        ok = stab >= stability_score_thresh
        logits, iou, stab, pt = logits[ok], iou[ok], stab[ok], pt[ok.cpu()]
    binary = logits > mt
    del logits
    box = batched_mask_to_box(binary)
    ok = ~is_box_near_crop_edge(box, crop_box, [0, 0, w, h])
    if not torch.all(ok):
        binary, iou, stab, box, pt = binary[ok], iou[ok], stab[ok], box[ok], pt[ok.cpu()]
    out[0] += [np.packbits(m) for m in binary.flatten(1).cpu().numpy()]
    for k, v in enumerate((iou, stab, box, pt), start=1):
        out[k].append(v)


def merge_crops(
    crops: list[CropMasks],
    orig_size: tuple[int, int],
    crop_nms_thresh: float,
    box_nms_thresh: float,
    min_mask_region_area: int,
) -> list[AmgMask]:
    """Between-crop NMS, small-region post-processing, full-size masks, in
    segment-anything's order (thresholds as in ``SamAutomaticMaskGenerator``)."""
    import torch
    from torchvision.ops.boxes import batched_nms, box_area

    packed = [(c, k) for c in crops for k in range(len(c.packed))]
    iou_preds = torch.cat([c.iou_preds for c in crops])
    stability = torch.cat([c.stability for c in crops])
    boxes = torch.cat([c.boxes for c in crops])
    points = torch.cat([c.points for c in crops])
    crop_boxes = torch.tensor([c.crop_box for c in crops for _ in c.packed], dtype=torch.int64).reshape(-1, 4)
    if len(crops) > 1 and len(boxes):  # prefer masks from smaller crops, as segment-anything does
        scores = (1 / box_area(crop_boxes)).to(boxes.device)
        keep = batched_nms(boxes.float(), scores, torch.zeros(len(boxes)), iou_threshold=crop_nms_thresh)
        packed = [packed[k] for k in keep.tolist()]
        iou_preds, stability, boxes, crop_boxes = iou_preds[keep], stability[keep], boxes[keep], crop_boxes[keep]
        points = points[keep.cpu()]
    masks = [unpack(c, k, orig_size) for c, k in packed]
    iou_np, stab_np = iou_preds.cpu().numpy(), stability.cpu().numpy()
    boxes_np, crop_np, points_np = boxes.cpu().numpy(), crop_boxes.cpu().numpy(), points.cpu().numpy()
    order = list(range(len(masks)))
    if min_mask_region_area > 0 and masks:
        nms_thresh = max(box_nms_thresh, crop_nms_thresh)
        order, masks, boxes_np = remove_small_regions(masks, boxes_np, min_mask_region_area, nms_thresh)
    return [
        AmgMask(
            masks[j],
            float(iou_np[k]),
            float(stab_np[k]),
            boxes_np[k].tolist(),
            crop_np[k].tolist(),
            points_np[k].tolist(),
        )
        for j, k in enumerate(order)
    ]


def remove_small_regions(
    masks: list[np.ndarray], boxes: np.ndarray, min_area: int, nms_thresh: float
) -> tuple[list[int], list[np.ndarray], np.ndarray]:
    """SamAutomaticMaskGenerator.postprocess_small_regions on binary masks (no RLE):
    returns the kept indices in NMS order, their masks and the updated boxes."""
    import torch
    from segment_anything.utils.amg import batched_mask_to_box
    from segment_anything.utils.amg import remove_small_regions as remove_regions
    from torchvision.ops.boxes import batched_nms

    new_masks, scores = [], []
    for mask in masks:
        mask, changed = remove_regions(mask, min_area, mode="holes")
        unchanged = not changed
        mask, changed = remove_regions(mask, min_area, mode="islands")
        new_masks.append(mask)
        scores.append(float(unchanged and not changed))  # NMS prefers masks left alone
    new_boxes = batched_mask_to_box(torch.as_tensor(np.stack(new_masks)))
    keep = batched_nms(
        new_boxes.float(),
        torch.as_tensor(scores),
        torch.zeros(len(new_boxes)),
        iou_threshold=nms_thresh,
    ).tolist()
    boxes = boxes.copy()
    for k in keep:
        if scores[k] == 0.0:  # changed: segment-anything replaces its mask and box
            boxes[k] = new_boxes[k].numpy()
    return keep, [new_masks[k] for k in keep], boxes


def unpack(crop: CropMasks, k: int, orig_size: tuple[int, int]) -> np.ndarray:
    """The k-th packed mask of a crop as an (H, W) bool mask of the image (zero padded)."""
    h, w = crop.shape
    m = np.unpackbits(crop.packed[k], count=h * w).reshape(h, w).astype(bool)
    x0, y0, x1, y1 = crop.crop_box
    if (x0, y0, x1, y1) == (0, 0, orig_size[1], orig_size[0]):
        return m
    full = np.zeros(orig_size, dtype=bool)
    full[y0:y1, x0:x1] = m
    return full
