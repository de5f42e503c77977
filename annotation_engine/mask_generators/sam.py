"""segment-anything's automatic mask generation as a mask generator.

The generation loop is ours (``sam_amg.ExactMaskGenerator``, with ``sam_decoder`` and
``sam_postprocess``): the same masks as
``SamAutomaticMaskGenerator``, bit for bit in fp32 with one image per encoder call (the CPU
default), faster, and with several images per encoder call on a GPU (not bit-exact).

``sam`` builds vit_h / vit_l / vit_b (segment-anything's own builders, without weights)
and loads a checkpoint with ``torch.load(weights_only=True)``; ``sam-tiny`` is a small,
randomly initialised SAM of the same classes (img_size 256, a depth-2 ViT of width 64, a
depth-2 TwoWayTransformer) for tests and CPU smoke runs. Random weights predict low IoU:
give it thresholds of 0 for masks to come out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from annotation_engine.engine_config import path_identity
from annotation_engine.mask_generators import Proposal
from annotation_engine.registry import MASK_GENERATORS


def build_sam_tiny(seed: int = 0):
    """A small Sam: ImageEncoderViT(img_size=256, embed 64, depth 2), PromptEncoder on a
    16x16 grid, MaskDecoder with a depth-2, width-64 TwoWayTransformer; seeded weights."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    img, patch, dim = 256, 16, 64
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=img,
                patch_size=patch,
                embed_dim=dim,
                depth=2,
                num_heads=2,
                mlp_ratio=2.0,
                out_chans=dim,
                qkv_bias=True,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                window_size=4,
                global_attn_indexes=(1,),
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=dim,
                image_embedding_size=(img // patch, img // patch),
                input_image_size=(img, img),
                mask_in_chans=8,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer_dim=dim,
                transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=128, num_heads=2),
                iou_head_depth=2,
                iou_head_hidden_dim=32,
            ),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        )
    return sam.eval()


def _segment_anything_builder(name: str) -> Callable[[], Any]:
    def build():
        from segment_anything import sam_model_registry

        return sam_model_registry[name](checkpoint=None)  # weights are loaded by us, weights_only

    return build


# model type -> builder of an unloaded Sam (segment-anything's sam_model_registry, plus tiny)
SAM_BUILDERS: dict[str, Callable[[], Any]] = {
    "vit_h": _segment_anything_builder("vit_h"),
    "vit_l": _segment_anything_builder("vit_l"),
    "vit_b": _segment_anything_builder("vit_b"),
    "tiny": build_sam_tiny,
}


def load_sam(model_type: str, checkpoint: str | None, device: str = "cpu"):
    """A Sam of ``model_type`` with the checkpoint's weights (strict), in eval mode.

    Raises:
        KeyError: an unknown model type.
        ValueError: a checkpoint is required (every type but tiny) and missing.
        FileNotFoundError: the checkpoint path does not exist.
    """
    import torch

    if model_type not in SAM_BUILDERS:
        raise KeyError(f"unknown SAM model type {model_type!r}; known: {', '.join(SAM_BUILDERS)}")
    if checkpoint is None and model_type != "tiny":
        raise ValueError(
            f"SAM {model_type} needs a checkpoint path (e.g. sam_vit_h_4b8939.pth from the segment-anything release)"
        )
    sam = SAM_BUILDERS[model_type]()
    if checkpoint is not None:
        if not os.path.exists(checkpoint):
            raise FileNotFoundError(f"SAM checkpoint {checkpoint} does not exist")
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        sam.load_state_dict(state, strict=True)
    return sam.to(device).eval()


@MASK_GENERATORS.register("sam")
class SamGenerator:
    """segment-anything's automatic mask generation, exact and faster (sam_amg.py).

    Returns the masks and scores ``SamAutomaticMaskGenerator`` returns for the same model,
    image and parameters, without the work whose result it throws away.

    Args:
        model_type (str): vit_h, vit_l, vit_b, or tiny.
        checkpoint (str | None): .pth of segment-anything's release (None only for tiny).
        points_per_side (int): grid of point prompts per side.
        points_per_batch (int): prompts run together (memory vs speed).
        pred_iou_thresh (float): drop masks whose predicted IoU is lower.
        stability_score_thresh (float): drop masks whose stability score is lower.
        stability_score_offset (float): logit offset of the stability score.
        box_nms_thresh (float): box NMS inside SAM.
        crop_n_layers (int): extra layers of image crops (0 = whole image only).
        crop_nms_thresh (float): box NMS between crops.
        crop_overlap_ratio (float): overlap of first-layer crops, as a fraction of the short side.
        crop_n_points_downscale_factor (int): point grid reduction per crop layer.
        min_mask_region_area (int): remove holes/islands smaller than this (pixels; needs cv2).
        precision (str): fp32 (exact), bf16 or fp16 (autocast: faster on GPU, masks change;
            enters the engine version and the generator identity).
        encoder_batch (int | None): images (crops) per image-encoder call in ``generate_batch``;
            None: 1 on CPU (bit-exact with segment-anything), up to 8 on CUDA.
        device (str): torch device.
    """

    def __init__(
        self,
        model_type: str = "vit_h",
        checkpoint: str | None = None,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        min_mask_region_area: int = 0,
        precision: str = "fp32",
        encoder_batch: int | None = None,
        device: str = "cpu",
    ):
        from annotation_engine.mask_generators.sam_amg import ExactMaskGenerator

        self.model_type, self.checkpoint, self.precision = model_type, checkpoint, precision
        self.sam = load_sam(model_type, checkpoint, device)
        self.amg = ExactMaskGenerator(
            self.sam,
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers,
            crop_nms_thresh=crop_nms_thresh,
            crop_overlap_ratio=crop_overlap_ratio,
            crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            min_mask_region_area=min_mask_region_area,
            precision=precision,
            encoder_batch=encoder_batch,
        )

    def identity(self) -> dict[str, str]:
        from importlib.metadata import version

        weights = f":{path_identity(self.checkpoint)}" if self.checkpoint else ":random-seed0"
        model = f"sam-{self.model_type}{weights}"
        # the exact path keeps the stock generator's identity: same masks, same provenance
        suffix = "" if self.precision == "fp32" else f"+autocast-{self.precision}"
        return {
            "generator": "sam",
            "generator_model": model,
            "generator_version": f"segment-anything-{version('segment-anything')}{suffix}",
        }

    def generate(self, rgb: np.ndarray) -> list[Proposal]:
        """(H, W, 3) uint8 RGB -> proposals with predicted_iou and stability_score."""
        return self.generate_batch([rgb])[0]

    def generate_batch(self, images: list[np.ndarray]) -> list[list[Proposal]]:
        """Several (H, W, 3) uint8 RGB images; the image encoder sees them together."""
        return [
            [Proposal(m.mask, {"predicted_iou": m.predicted_iou, "stability_score": m.stability_score}) for m in masks]
            for masks in self.amg.generate_batch(images)
        ]


@MASK_GENERATORS.register("sam-tiny")
class TinySamGenerator(SamGenerator):
    """The tiny random SAM (tests, CPU smoke runs); same parameters as ``sam`` minus the model."""

    def __init__(self, checkpoint: str | None = None, **kw: Any):
        super().__init__(model_type="tiny", checkpoint=checkpoint, **kw)
