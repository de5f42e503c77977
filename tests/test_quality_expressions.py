"""Expressions: grounding read-back hit rates and MiniLM similarity."""

import math

import numpy as np
import pytest

from annotation_engine.quality.expressions import HitCounter, SentenceEmbedder, load_grounding, mask_iou, similarity
from common.errors import UniLSegError


def test_similarity_takes_each_generated_expression_s_best_match():
    vectors = {"a": [1, 0], "b": [0, 1], "c": [0.6, 0.8]}

    def embed(texts):
        return np.asarray([vectors[t] for t in texts], float)

    s = similarity([(["a", "b"], ["c"]), (["a"], ["b", "a"]), (["a"], [])], embed)
    assert s["n"] == 3  # the pair without ground-truth texts is left out
    assert s["mean"] == pytest.approx((0.6 + 0.8 + 1.0) / 3)
    assert math.isnan(similarity([], embed)["mean"])


def test_minilm_ranks_a_paraphrase_above_an_unrelated_sentence():
    embed = SentenceEmbedder()
    v = embed(["the red car on the left", "the red automobile at the left", "a bowl of soup"])
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


class _Oracle:
    """A grounding 'model' whose prediction is fixed: it marks the left half."""

    class config:
        threshold = 0.5


def test_hit_counter_counts_iou_at_least_half(monkeypatch):
    import importlib

    predict = importlib.import_module("unilseg.model.predict")  # unilseg.model.predict is also a function

    left = np.zeros((4, 8), bool)
    left[:, :4] = True
    monkeypatch.setattr(predict, "predict_probs_batch", lambda model, ims, texts: [left.astype(np.float32)] * len(ims))
    c = HitCounter(_Oracle())
    rgb = np.zeros((4, 8, 3), np.uint8)
    c.add(rgb, ["left", "  "], left)  # an empty text is not read
    c.add(rgb, ["right"], ~left)
    s = c.summary()
    assert (s["n"], s["hit_rate@0.5"], s["mean_iou"]) == (2, 0.5, 0.5)
    assert mask_iou(left, left) == 1.0 and mask_iou(left & False, left & False) == 0.0


def test_a_file_that_is_no_checkpoint_is_a_user_error(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(UniLSegError, match=str(bad)):
        load_grounding(str(bad))
    with pytest.raises(UniLSegError):
        load_grounding(str(tmp_path / "missing.pt"))
