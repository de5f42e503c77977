"""segment-anything's ``MaskDecoder`` for many point prompts on one image, same floats, less work.

``MaskDecoder.predict_masks`` repeats the image embedding once per prompt and runs every
op on all B prompts at once: (B, 4096, 256) tensors of 4 MB per prompt, 256 MB for SAM's
64 prompts per batch, that each op reads from and writes to memory. Here:

* **The image side of the first block runs once** (``TwoWayAttentionBlock``: until its
  image-to-token attention, the keys are the image embedding, the same for every prompt),
  and is broadcast to the prompts.
* **The per-prompt image side runs a few prompts at a time** (``chunk``): a span of prompts
  goes through the image-to-token half of one block, then straight into the next block's
  key/value projections and token-to-image attention (or the final attention), while its
  tensors are still in the CPU's cache. That is legal because the image-to-token half of a
  block changes only the keys: the next block's token side (self-attention, ``norm1``, the
  query projection) needs only the queries, which are complete, so it runs first.
* **Token-side ops run on all B prompts at once**, exactly as in segment-anything: the
  self-attention, MLP, norms, the projections of the 7 tokens and the attention output
  projections of the token-to-image attentions, the IoU head and the hypernetwork MLPs.
  These are linear layers with 7 B (or B) rows, and the CPU's matrix kernels round a
  product of fewer than ~16 rows differently (measured: the hypernetwork MLP of 9 prompts
  differs from the same prompts among 64 in the last bit), so their row counts stay B.

Why every float stays the same: every op is segment-anything's own module or tensor op,
in its order, on the same memory layout per prompt. What changes is how many prompts an op
sees at once, only for ops whose output for a prompt depends only on that prompt's input
with thousands of rows per prompt: the linears over 4096 image tokens (a row's dot products
do not depend on the other rows), batched matrix products (per matrix), softmax and layer
norm (per row), element-wise ops, and the decoder's upscaling convolutions (per image).
``tests/test_sam_amg.py`` checks the transformer and the masks bit for bit against
segment-anything at SAM's decoder size (256 channels, 64 x 64 tokens) on 1 and 2 threads,
for several prompt counts, chunks and selections.

``decode_points`` is the whole decoder for a batch of point prompts, as the generation loop
(``sam_amg``) calls it: every prompt's predicted IoUs, and the mask logits of chosen prompts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any


def decode_points(
    model: Any,
    predictor: Any,
    points: Any,
    im_size: tuple[int, int],
    chunk: int,
    autocast: Callable[[], AbstractContextManager],
) -> tuple[Any, Callable[[list[int]], Any]]:
    """``MaskDecoder.predict_masks`` for B point prompts on the predictor's image, split.

    Args:
        model (Sam): segment-anything's Sam.
        predictor (SamPredictor): with the image's (crop's) features set.
        points (np.ndarray): (B, 2) point prompts in the crop's frame.
        im_size (tuple[int, int]): (h, w) of the crop.
        chunk (int): prompts whose per-prompt decoder work runs together.
        autocast: gives the precision's context (a null context for fp32).

    Returns:
        Predicted IoUs (B, 3) of every prompt, and a function giving the low-res mask
        logits (k, 3, 256, 256) of chosen prompts (sorted prompt indices).
    """
    import torch

    dec = model.mask_decoder
    in_points = torch.as_tensor(predictor.transform.apply_coords(points, im_size), device=predictor.device)
    in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
    with autocast():
        sparse, dense = model.prompt_encoder(points=(in_points[:, None, :], in_labels[:, None]), boxes=None, masks=None)
        output_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
        tokens = torch.cat((output_tokens, sparse), dim=1)
        # without a mask prompt the dense embedding is one vector broadcast to every prompt,
        # so the image side is the same for all of them: one copy, not B
        image = predictor.features + dense[:1]
        hs, keys = two_way_transformer(dec.transformer, image, model.prompt_encoder.get_dense_pe(), tokens, chunk)
        iou_pred = dec.iou_prediction_head(hs[:, 0, :])[:, 1:].float()  # multimask: outputs 1..3
        hyper_in = hypernetwork(dec, hs)

    def masks_of(sel: list[int]) -> Any:
        src = torch.cat([keys[p // chunk][p % chunk : p % chunk + 1] for p in sel])
        with autocast():
            return low_res_masks(dec, src, hyper_in[sel], image.shape[2:], len(tokens))[:, 1:].float()

    return iou_pred, masks_of


def two_way_transformer(t: Any, image: Any, image_pe: Any, tokens: Any, chunk: int) -> tuple[Any, list[Any]]:
    """``TwoWayTransformer.forward`` for B prompts on one image.

    Args:
        t (TwoWayTransformer): the mask decoder's transformer.
        image (Tensor): (1, C, h, w) image embedding plus the (no-mask) dense prompt embedding.
        image_pe (Tensor): (1, C, h, w) positional encoding.
        tokens (Tensor): (B, T, C) output tokens and sparse prompt embeddings.
        chunk (int): prompts whose image side runs together.

    Returns:
        The (B, T, C) tokens and the image keys of every span of ``chunk`` prompts, each
        (n, h * w, C): what segment-anything's call with the image repeated B times returns,
        bit for bit, split by span.
    """
    b = tokens.shape[0]
    spans = [slice(i, min(i + chunk, b)) for i in range(0, b, chunk)]
    key_pe = image_pe.flatten(2).permute(0, 2, 1)  # (1, N, C), the strided view stock makes
    shared = image.flatten(2).permute(0, 2, 1)  # the first block's keys: one image for all prompts
    keys: list[Any] = [shared] * len(spans)
    queries, pending = tokens, None  # pending: a block whose image-to-token half is still to run
    for layer in [*t.layers, None]:  # None: the final token-to-image attention
        if layer is None:
            a = t.final_attn_token_to_image
        else:
            queries = _self_attention(layer, queries, tokens)
            a = layer.cross_attn_token_to_image
        q_t2i = a.q_proj(queries + tokens)
        outs, q_i2t, shared_kv = [], [], None
        for i, s in enumerate(spans):
            if pending is not None:
                keys[i] = _image_to_token(*pending[:3], keys[i], pending[3][i], s)
            if keys[i] is not shared:
                k, v, qi = _project(a, layer, keys[i], key_pe)
            else:  # the first block: its image side is computed once
                k, v, qi = shared_kv = shared_kv or _project(a, layer, shared, key_pe)
            n = s.stop - s.start
            q_i2t.append(qi)
            outs.append(_attention(a, q_t2i[s], k.expand(n, -1, -1), v.expand(n, -1, -1)))
        attn_out = a.out_proj(_cat(outs))
        if layer is None:
            return t.norm_final_attn(queries + attn_out), keys
        queries = layer.norm2(queries + attn_out)
        queries = layer.norm3(queries + layer.mlp(queries))
        q = queries + tokens
        a2 = layer.cross_attn_image_to_token
        pending = (layer, a2.k_proj(q), a2.v_proj(queries), q_i2t)
        # keys are contiguous from here on, so is keys + key_pe in stock's call; a contiguous
        # key_pe gives that sum, the same values, without strided reads
        key_pe = key_pe.contiguous()
    raise AssertionError("unreachable")


def _project(a: Any, layer: Any, keys: Any, key_pe: Any) -> tuple[Any, Any, Any]:
    """The image side's projections: key and value of the token-to-image attention ``a``
    and, in a block, the query of its image-to-token attention (``keys + key_pe`` once)."""
    k_img = keys + key_pe
    qi = layer.cross_attn_image_to_token.q_proj(k_img) if layer is not None else None
    return a.k_proj(k_img), a.v_proj(keys), qi


def _self_attention(layer: Any, queries: Any, query_pe: Any) -> Any:
    """The token side of ``TwoWayAttentionBlock.forward`` up to ``norm1``, on all prompts."""
    if layer.skip_first_layer_pe:
        return layer.norm1(layer.self_attn(q=queries, k=queries, v=queries))
    q = queries + query_pe
    return layer.norm1(queries + layer.self_attn(q=q, k=q, v=queries))


def _image_to_token(layer: Any, k_tok: Any, v_tok: Any, keys: Any, q_img: Any, s: slice) -> Any:
    """A block's image-to-token attention and ``norm4`` for the prompts of span ``s``.

    ``keys`` and ``q_img`` are the span's (or, in the first block, the shared (1, N, C)) keys
    and their query projection. The residual sum puts the contiguous term first
    (a + b == b + a exactly) so that it comes out contiguous and ``norm4`` does not copy it.
    """
    a = layer.cross_attn_image_to_token
    n = s.stop - s.start
    attn_out = a.out_proj(_attention(a, q_img.expand(n, -1, -1), k_tok[s], v_tok[s]))
    return layer.norm4(attn_out + keys.contiguous())


def _attention(a: Any, q: Any, k: Any, v: Any) -> Any:
    """``Attention.forward`` of segment-anything between its input and output projections."""
    import torch

    q, k, v = (a._separate_heads(x, a.num_heads) for x in (q, k, v))
    attn = q @ k.permute(0, 1, 3, 2)
    attn = attn / math.sqrt(q.shape[-1])
    attn = torch.softmax(attn, dim=-1)
    return a._recombine_heads(attn @ v)


def _cat(parts: list[Any]) -> Any:
    import torch

    return parts[0] if len(parts) == 1 else torch.cat(parts)


def hypernetwork(dec: Any, hs: Any) -> Any:
    """(B, num_mask_tokens, C / 8): the hypernetwork MLPs on every prompt's mask tokens, as
    ``MaskDecoder.predict_masks`` runs them (all B rows at once; see the module docstring)."""
    import torch

    mask_tokens_out = hs[:, 1 : (1 + dec.num_mask_tokens), :]
    return torch.stack(
        [dec.output_hypernetworks_mlps[i](mask_tokens_out[:, i, :]) for i in range(dec.num_mask_tokens)], dim=1
    )


def low_res_masks(dec: Any, src: Any, hyper_in: Any, size: tuple[int, int], batch: int) -> Any:
    """Mask logits (n, num_mask_tokens, 4h, 4w) of n prompts from their contiguous (n, h * w, C)
    image keys and (n, num_mask_tokens, C / 8) hypernetwork outputs (``predict_masks``' last
    lines), for n of the ``batch`` prompts segment-anything's call would hold.

    The keys are viewed as segment-anything views its (batch, h * w, C) tensor. Of a batch of
    several prompts that view is channels-last, and the upscaling convolutions keep that
    layout (their layer norm then sums channels in another order than in a contiguous
    tensor); a (1, C, h, w) view of one prompt's keys gets a batch stride that PyTorch does
    not read as channels-last. So unless segment-anything's own batch is one prompt, the
    strides are those of a slice of its view.
    """
    n, tokens, c = src.shape
    if batch > 1:
        x = src.as_strided((n, c, *size), (tokens * c, 1, size[1] * c, c))
    else:
        x = src.transpose(1, 2).view(n, c, *size)
    upscaled = dec.output_upscaling(x)
    n, cu, hu, wu = upscaled.shape
    return (hyper_in @ upscaled.view(n, cu, hu * wu)).view(n, -1, hu, wu)
