"""Our encoders against independent implementations with the same weights (slow: imports
open_clip / builds transformers' Swin)."""

import pytest
import torch

from unilseg.model import create_text_encoder, create_visual_encoder
from unilseg.tokenizers import ClipTokenizer


@pytest.mark.slow
def test_clip_text_matches_open_clip():
    open_clip = pytest.importorskip("open_clip")
    # OpenAI's weights use QuickGELU; open_clip's plain "ViT-B-16" config uses GELU
    ref = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None).eval()
    ours = create_text_encoder("clip-b16").eval()
    ours.load_state_dict(
        {k: v for k, v in ref.state_dict().items() if not k.startswith("visual.") and k != "attn_mask"}, strict=True
    )
    ids = ClipTokenizer(17)(["a man in a red shirt", "the zebra on the far left of the picture next to a tree", ""])
    seen = {}
    ref.ln_final.register_forward_hook(lambda m, i, o: seen.__setitem__("words", o))
    with torch.no_grad():
        sentence_ref = ref.encode_text(torch.nn.functional.pad(ids, (0, 77 - 17)))  # open_clip needs 77 ids
        words, sentence = ours(ids)
    torch.testing.assert_close(sentence, sentence_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(words, seen["words"][:, :17], atol=1e-4, rtol=1e-4)  # causal: first 17 agree


def _to_hf_names(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        if k.endswith("relative_position_index"):
            continue
        if k.startswith("norm"):  # norm0..3 -> the backbone's per-stage output norms
            out[f"hidden_states_norms.stage{int(k[4]) + 1}.{k.split('.')[1]}"] = v
            continue
        n = k.replace("patch_embed.proj", "embeddings.patch_embeddings.projection")
        n = n.replace("patch_embed.norm", "embeddings.norm").replace("norm1", "layernorm_before")
        n = n.replace("norm2", "layernorm_after").replace("attn.proj", "attention.o_proj")
        n = n.replace(
            "attn.relative_position_bias_table", "attention.relative_position_bias.relative_position_bias_table"
        )
        n = ("swin.encoder." if n.startswith("layers.") else "swin.") + n
        if "attn.qkv" in n:
            for part, t in zip("qkv", v.chunk(3, 0)):
                out[n.replace("attn.qkv", f"attention.{part}_proj")] = t
        else:
            out[n] = v
    return out


@pytest.mark.slow
def test_swin_matches_transformers_swin_backbone():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    ours = create_visual_encoder("tiny").eval()
    for p in ours.parameters():  # non-trivial norms, biases and relative-position tables
        if p.dim() < 2:
            p.data.normal_(0, 0.2)
    cfg = transformers.SwinConfig(
        embed_dim=16,
        depths=[2, 2, 2, 2],
        num_heads=[1, 2, 4, 8],
        window_size=7,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    ref = transformers.SwinBackbone(cfg).eval()
    missing, unexpected = ref.load_state_dict(_to_hf_names(ours.state_dict()), strict=False)
    assert unexpected == [] and set(missing) == {"swin.layernorm.weight", "swin.layernorm.bias"}
    x = torch.randn(2, 3, 480, 320)  # stage maps 120x80 ... 15x10: padding and shifted windows everywhere
    with torch.no_grad():
        for a, b in zip(ours(x), ref(x).feature_maps):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
