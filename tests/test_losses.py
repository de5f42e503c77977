import torch

from unilseg.losses import dice_loss, mask_loss, unilseg_loss


def test_empty_target_and_confident_negative_is_near_zero():
    logits = torch.full((2, 1, 8, 8), -20.0)
    out = mask_loss(logits, torch.zeros(2, 8, 8))
    assert out["loss"] < 1e-4 and out["dice"] < 1e-4


def test_empty_target_penalises_foreground():
    low = mask_loss(torch.full((1, 1, 8, 8), -5.0), torch.zeros(1, 8, 8))["loss"]
    high = mask_loss(torch.full((1, 1, 8, 8), 5.0), torch.zeros(1, 8, 8))["loss"]
    assert high > low + 1


def test_perfect_and_wrong_predictions():
    t = torch.zeros(1, 1, 8, 8)
    t[..., 2:6, 2:6] = 1
    good = dice_loss(t * 40 - 20, t)
    bad = dice_loss(20 - t * 40, t)
    assert good < 1e-3 and bad > 0.98  # smoothing: 1 - 1 / (48 + 16 + 1)


def test_target_resized_to_logits():
    t = torch.zeros(1, 32, 32, dtype=torch.uint8)
    t[:, 8:24, 8:24] = 1
    logits = torch.zeros(1, 1, 8, 8)
    logits[..., 2:6, 2:6] = 20
    logits[logits == 0] = -20
    assert mask_loss(logits, t)["loss"] < 1e-3


def test_aux_outputs_are_weighted_and_differentiable():
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    aux = [torch.randn(2, 1, 8, 8, requires_grad=True) for _ in range(3)]
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    no_aux = unilseg_loss({"logits": logits, "aux_logits": []}, target)
    assert no_aux["aux"] == 0 and torch.allclose(no_aux["loss"], mask_loss(logits, target)["loss"])
    out = unilseg_loss({"logits": logits, "aux_logits": aux}, target, aux_weight=0.5)
    expected = mask_loss(logits, target)["loss"] + 0.5 * sum(mask_loss(a, target)["loss"] for a in aux)
    assert torch.allclose(out["loss"], expected)
    out["loss"].backward()
    assert all(a.grad is not None and torch.isfinite(a.grad).all() for a in aux + [logits])
