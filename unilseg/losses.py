"""Mask losses for UniLSeg: binary cross-entropy + Dice on logits, with auxiliary outputs.

Targets may be all zero (an expression that refers to nothing, as in gRefCOCO): BCE pushes
every logit down and the smoothed Dice term goes to 0 as the predicted area does. Targets at
another resolution than the logits (e.g. letterboxed to S while logits are S/4) are resized
with nearest neighbour to the logits' size, as CRIS does, so they stay binary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _match_target(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """target (B, H, W) or (B, 1, H, W), any dtype -> float (B, 1, h, w) like logits."""
    if target.dim() == 3:
        target = target.unsqueeze(1)
    target = target.to(logits.dtype)
    if target.shape[-2:] != logits.shape[-2:]:
        target = F.interpolate(target, size=logits.shape[-2:], mode="nearest")
    return target


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Mean over the batch of 1 - (2 |P.T| + s) / (|P| + |T| + s), P = sigmoid(logits).

    Args:
        logits (torch.Tensor): (B, 1, h, w).
        target (torch.Tensor): (B, 1, h, w) in {0, 1}.
        smooth (float): s, keeps empty targets and predictions finite (loss 0 when both are empty).
    """
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    dice = (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)
    return (1 - dice).mean()


def mask_loss(
    logits: torch.Tensor, target: torch.Tensor, bce_weight: float = 1.0, dice_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """BCE + Dice of one prediction.

    Args:
        logits (torch.Tensor): (B, 1, h, w).
        target (torch.Tensor): (B, H, W) or (B, 1, H, W) binary masks, any resolution.
        bce_weight (float): weight of the mean binary cross-entropy.
        dice_weight (float): weight of the Dice loss.

    Returns:
        dict: "loss" (weighted sum), "bce", "dice" (unweighted), all scalars.
    """
    t = _match_target(target, logits)
    bce = F.binary_cross_entropy_with_logits(logits, t)
    dice = dice_loss(logits, t)
    return {"loss": bce_weight * bce + dice_weight * dice, "bce": bce, "dice": dice}


def unilseg_loss(
    outputs: dict, target: torch.Tensor, aux_weight: float = 1.0, bce_weight: float = 1.0, dice_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """Loss of a UniLSeg forward: main logits plus `aux_weight` times each auxiliary output's loss.

    Args:
        outputs (dict): the model's output, "logits" (B, 1, h, w) and "aux_logits" (list, may be empty).
        target (torch.Tensor): (B, H, W) or (B, 1, H, W) binary masks (all zero = no target).
        aux_weight (float): weight of every auxiliary (earlier decoder layer) loss.
        bce_weight (float): weight of BCE inside each term.
        dice_weight (float): weight of Dice inside each term.

    Returns:
        dict: "loss" (to backpropagate), "bce" and "dice" of the main output, "aux" (sum of the
        auxiliary losses, 0 when there are none); all scalars.
    """
    main = mask_loss(outputs["logits"], target, bce_weight, dice_weight)
    aux = outputs["logits"].new_zeros(())
    for logits in outputs.get("aux_logits", []):
        aux = aux + mask_loss(logits, target, bce_weight, dice_weight)["loss"]
    return {"loss": main["loss"] + aux_weight * aux, "bce": main["bce"], "dice": main["dice"], "aux": aux}
