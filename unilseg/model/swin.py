"""Swin Transformer backbone laid out like the official detection/segmentation code.

Parameter names follow the released UniLSeg checkpoint's `backbone_visual.*` entries:
`patch_embed.{proj,norm}`, `layers.i.blocks.j.{norm1,attn,norm2,mlp}`, patch merging at the
END of stages 0-2 (`layers.i.downsample`), and one LayerNorm per stage output
(`norm0..norm3`). Feature maps are padded to multiples of the window; the shifted-window
mask uses -100 like the original. Registered as `swin-b` (the paper's) and `tiny` (CPU tests).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import DropPath
from .registry import register_visual_encoder

log = logging.getLogger(__name__)


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, ws * ws, C); H and W are multiples of ws."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """(B * nW, ws * ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_position_index(ws: int) -> torch.Tensor:
    """(ws*ws, ws*ws) int64 index into the (2ws-1)^2 relative-bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)  # (2, N)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)  # (N, N, 2), >= 0
    return rel[:, :, 0] * (2 * ws - 1) + rel[:, :, 1]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window with a learned relative position bias.

    Args:
        dim (int): channels.
        window_size (int): window side.
        num_heads (int): attention heads.
    """

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B*nW, N, C), mask (nW, N, N) with 0 / -100 or None -> (B*nW, N, C)."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, -1).permute(2, 0, 1)  # (nH, N, N)
        if mask is not None:
            nw = mask.shape[0]
            bias = (bias.unsqueeze(0) + mask.unsqueeze(1)).repeat(bw // nw, 1, 1, 1)  # (B*nW, nH, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))  # (B*nW, nH, N, hd)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (names match the checkpoint's `mlp.fc1` / `mlp.fc2`)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """(Shifted-)window attention block, pre-norm, with stochastic depth.

    Args:
        dim (int): channels.
        num_heads (int): attention heads.
        window_size (int): window side.
        shift (int): cyclic shift (0 or window_size // 2).
        mlp_ratio (float): MLP hidden width over dim.
        drop_path (float): stochastic depth rate.
    """

    def __init__(
        self, dim: int, num_heads: int, window_size: int, shift: int, mlp_ratio: float = 4.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.window_size, self.shift = window_size, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int, mask: torch.Tensor) -> torch.Tensor:
        """x (B, H*W, C), mask (nW, N, N) for the padded map -> (B, H*W, C)."""
        b, _, c = x.shape
        ws = self.window_size
        y = self.norm1(x).view(b, h, w, c)
        y = F.pad(y, (0, 0, 0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws))  # pad right/bottom after the norm
        hp, wp = y.shape[1:3]
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, ws), mask if self.shift else None)
        y = window_reverse(y, ws, hp, wp)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        y = y[:, :h, :w, :].reshape(b, h * w, c)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat (order x00, x10, x01, x11), LayerNorm(4C), Linear 4C -> 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, H*W, C) -> (B, ceil(H/2)*ceil(W/2), 2C)."""
        b, _, c = x.shape
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.reshape(b, -1, 4 * c)))


class SwinStage(nn.Module):
    """`depth` blocks alternating plain and shifted windows, then optional patch merging."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, window_size: int, drop_paths: Sequence[float], downsample: bool
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.blocks = nn.ModuleList(
            [
                SwinBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, drop_path=drop_paths[i])
                for i in range(depth)
            ]
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def shift_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """(nW, N, N) additive mask: -100 between tokens from different regions after the roll."""
        ws, s = self.window_size, self.window_size // 2
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        region = torch.zeros(1, hp, wp, 1, device=device)
        cnt = 0
        for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                region[:, hs, wsl, :] = cnt
                cnt += 1
        win = window_partition(region, ws).squeeze(-1)  # (nW, N)
        diff = win.unsqueeze(1) - win.unsqueeze(2)
        return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)

    def forward(self, x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """x (B, H*W, C) -> (stage output (B, H*W, C), next input, next H, next W)."""
        mask = self.shift_mask(h, w, x.device)
        for blk in self.blocks:
            x = blk(x, h, w, mask)
        if self.downsample is None:
            return x, x, h, w
        return x, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2


class PatchEmbed(nn.Module):
    """Non-overlapping patch_size x patch_size conv, then LayerNorm; pads the image right/bottom."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, patch_size, patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, H/p, W/p)."""
        p = self.patch_size
        x = F.pad(x, (0, (p - x.shape[3] % p) % p, 0, (p - x.shape[2] % p) % p))
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SwinTransformer(nn.Module):
    """Four-stage Swin encoder returning normalised maps at strides 4/8/16/32.

    Args:
        embed_dim (int): channels of stage 0; stage i has embed_dim * 2**i.
        depths (Sequence[int]): blocks per stage.
        num_heads (Sequence[int]): heads per stage.
        window_size (int): attention window side.
        patch_size (int): stride of the patch embedding.
        drop_path_rate (float): stochastic depth, rising linearly from 0 to this over all blocks.
    """

    def __init__(
        self,
        embed_dim: int = 128,
        depths: Sequence[int] = (2, 2, 18, 2),
        num_heads: Sequence[int] = (4, 8, 16, 32),
        window_size: int = 7,
        patch_size: int = 4,
        drop_path_rate: float = 0.2,
    ) -> None:
        super().__init__()
        self.channels = tuple(embed_dim * 2**i for i in range(len(depths)))
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList(
            [
                SwinStage(
                    self.channels[i],
                    depths[i],
                    num_heads[i],
                    window_size,
                    dpr[sum(depths[:i]) : sum(depths[: i + 1])],
                    downsample=i < len(depths) - 1,
                )
                for i in range(len(depths))
            ]
        )
        for i, c in enumerate(self.channels):
            self.add_module(f"norm{i}", nn.LayerNorm(c))
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> [(B, C_i, H_i, W_i)] for strides 4, 8, 16, 32."""
        x = self.patch_embed(x)
        h, w = x.shape[2:]
        x = x.flatten(2).transpose(1, 2)  # (B, H*W, C)
        outs = []
        for i, stage in enumerate(self.layers):
            out, x, nh, nw = stage(x, h, w)
            out = getattr(self, f"norm{i}")(out)
            outs.append(out.view(-1, h, w, self.channels[i]).permute(0, 3, 1, 2).contiguous())
            h, w = nh, nw
        return outs

    def load_pretrained(self, path: str) -> list[str]:
        """Loads a Swin checkpoint (e.g. swin_base_patch4_window7_224_22k.pth) the official way.

        Entries whose name and shape match are copied; the rest (classifier head, final norm,
        attn_mask buffers) are ignored. Names are looked for under 'state_dict' or 'model',
        with or without a 'module.' prefix.

        Returns:
            list[str]: the ignored checkpoint keys.
        """
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        sd = ckpt.get("state_dict", ckpt.get("model", ckpt)) if isinstance(ckpt, dict) else ckpt
        own = self.state_dict()
        take, ignored = {}, []
        for k, v in sd.items():
            k2 = k[len("module.") :] if k.startswith("module.") else k
            if k2 in own and own[k2].shape == v.shape:
                take[k2] = v
            else:
                ignored.append(k)
        if not take:
            raise ValueError(f"no tensor of {path} matches the Swin encoder's names/shapes")
        own.update(take)
        self.load_state_dict(own)
        log.info("loaded %d tensors from %s; ignored %d: %s", len(take), path, len(ignored), ignored[:10])
        return ignored


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _build(pretrained: str | None, **kw) -> SwinTransformer:
    model = SwinTransformer(**kw)
    if pretrained:
        model.load_pretrained(pretrained)
    return model


@register_visual_encoder("swin-b")
def swin_b(pretrained: str | None = None, drop_path_rate: float = 0.2) -> SwinTransformer:
    """Swin-B of the paper: patch 4, embed 128, depths 2/2/18/2, heads 4/8/16/32, window 7."""
    return _build(
        pretrained,
        embed_dim=128,
        depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32),
        window_size=7,
        drop_path_rate=drop_path_rate,
    )


@register_visual_encoder("tiny")
def swin_tiny_test(pretrained: str | None = None, drop_path_rate: float = 0.0) -> SwinTransformer:
    """A 16/32/64/128-channel Swin (two blocks per stage) for CPU tests and demos."""
    return _build(
        pretrained,
        embed_dim=16,
        depths=(2, 2, 2, 2),
        num_heads=(1, 2, 4, 8),
        window_size=7,
        drop_path_rate=drop_path_rate,
    )
