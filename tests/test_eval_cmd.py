"""`unilseg eval` with a tiny model through the real loading path (our checkpoint and the
released-file layout), and with saved masks."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from eval_fixtures import save_png, write_split
from PIL import Image
from s3_fixtures import s3_bucket  # noqa: F401 (fixture)

from cli import main
from shards import storage
from shards.reader import ShardReader
from unilseg.checkpoint import RELEASED_PREFIXES, save_checkpoint
from unilseg.eval.evaluate import evaluate
from unilseg.eval.metrics_referring import gres_metrics, referring_metrics
from unilseg.eval.overlays import sheet_size
from unilseg.model import build_model, load_preset, predict

pytest.importorskip("py_sod_metrics")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("evalcmd")
    gts = write_split(root / "ds" / "val")
    model = build_model("unilseg-tiny").eval()
    ckpt = save_checkpoint(root / "tiny.pt", model, step=3)
    return root, gts, model, ckpt


def _released_layout(model, path):
    """Our weights under the released file's names: {'state_dict': {'module.<released name>': t}}."""
    sd = {}
    for name, t in model.state_dict().items():
        old = next(o for o, n in RELEASED_PREFIXES if n and name.startswith(n))
        new = next(n for o, n in RELEASED_PREFIXES if o == old)
        sd["module." + old + name[len(new) :]] = t
    torch.save({"state_dict": sd}, path)


def test_cli_runs_a_checkpoint_and_writes_the_three_files(setup, tmp_path):
    root, gts, model, ckpt = setup
    out = tmp_path / "report"
    res = CliRunner().invoke(
        main,
        [
            "eval",
            "--checkpoint",
            str(ckpt),
            "--data",
            str(root / "ds"),
            "--out",
            str(out),
            "--overlays",
            "2",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "res (2): oIoU" in res.output and "metrics.json" in res.output
    doc = json.loads((out / "metrics.json").read_text())
    assert set(doc["metrics"]) == {"res", "gres", "sod"} and doc["run"]["threshold"] == 0.35
    assert doc["run"]["predictor"]["checkpoint"] == str(ckpt)

    # the same numbers from the public predict() and metric functions, target by target
    preds, gt = {"res": [], "gres": []}, {"res": [], "gres": []}
    for sample, _, t in ShardReader(root / "ds" / "val").targets():
        if t.task in preds:
            preds[t.task].append(predict(model, sample.rgb, t.texts[0]))
            gt[t.task].append(t.mask_array())
    assert doc["metrics"]["res"] == pytest.approx(referring_metrics(preds["res"], gt["res"]), nan_ok=True)
    assert doc["metrics"]["gres"] == pytest.approx(gres_metrics(preds["gres"], gt["gres"]), nan_ok=True)

    report = (out / "report.md").read_text()
    for heading in (
        "## Referring segmentation",
        "## Generalised referring segmentation",
        "## Salient / camouflaged object detection",
        "| P@0.5 | P@0.6 | P@0.7 | P@0.8 | P@0.9 | oIoU |",
        "Threshold used here: 0.35",
        "Overall IoU: sum over samples",
        "Benchmark: none",
        "![best and worst predictions](overlays.png)",
    ):
        assert heading in report
    assert Image.open(out / "overlays.png").size == sheet_size(2, 2, 2)


def test_released_layout_with_a_preset_gives_the_same_metrics(setup, tmp_path):
    root = setup[0]
    # the released file has no position features nor upsampler: a tiny model in the released layout
    plain = load_preset("unilseg-tiny").to_dict()
    plain["head"].update(position_features=False, upsample=0)
    (tmp_path / "plain.json").write_text(json.dumps(plain))
    torch.manual_seed(0)
    model = build_model(plain).eval()
    ckpt = save_checkpoint(tmp_path / "plain.pt", model, step=3)
    _released_layout(model, tmp_path / "released.pth")
    ours = evaluate(str(root / "ds"), str(tmp_path / "a"), checkpoint=str(ckpt), progress=False, limit=2)
    released = evaluate(
        str(root / "ds" / "val"),
        str(tmp_path / "b"),
        checkpoint=str(tmp_path / "released.pth"),
        preset=str(tmp_path / "plain.json"),
        progress=False,
        limit=2,
    )
    assert set(released) == set(ours) == {"res", "gres"}
    for task in ours:
        assert released[task] == pytest.approx(ours[task], nan_ok=True)
    res = CliRunner().invoke(
        main,
        [
            "eval",
            "--checkpoint",
            str(tmp_path / "released.pth"),
            "--data",
            str(root / "ds"),
            "--out",
            str(tmp_path / "c"),
            "--no-progress",
        ],
    )
    assert res.exit_code != 0 and "--preset unilseg-swin-b" in res.output
    res = CliRunner().invoke(
        main,
        [
            "eval",
            "--checkpoint",
            str(tmp_path / "released.pth"),
            "--preset",
            "unilseg-swin-b",
            "--data",
            str(root / "ds"),
            "--out",
            str(tmp_path / "d"),
        ],
    )
    assert res.exit_code != 0 and "does not match the model" in res.output


def test_a_preset_beside_our_checkpoint_must_be_its_own(setup, tmp_path):
    """`eval --preset` with our checkpoint: an unknown or another preset is a one-line error naming
    both (it was silently dropped); the checkpoint's own preset scores as without it. No report."""
    root, _, _, ckpt = setup
    args = ["eval", "--checkpoint", str(ckpt), "--data", str(root / "ds"), "--no-progress", "--limit", "2"]
    for preset, said in (
        ("no-such-preset", "unknown preset 'no-such-preset'"),
        ("unilseg-demo", "preset 'unilseg-demo' differs from the model"),
    ):
        res = CliRunner().invoke(main, args + ["--out", str(tmp_path / preset), "--preset", preset])
        lines = res.output.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1 and said in lines[0], res.output
        assert not (tmp_path / preset).exists()
    assert "carries, preset 'unilseg-tiny'" in lines[0] and str(ckpt) in lines[0]
    res = CliRunner().invoke(main, args + ["--out", str(tmp_path / "same"), "--preset", "unilseg-tiny"])
    assert res.exit_code == 0, res.output
    same = json.loads((tmp_path / "same" / "metrics.json").read_text())["metrics"]
    evaluate(str(root / "ds"), str(tmp_path / "none"), checkpoint=str(ckpt), progress=False, limit=2)
    assert same == json.loads((tmp_path / "none" / "metrics.json").read_text())["metrics"]


def test_cli_scores_saved_masks_and_reports_problems(setup, tmp_path):
    root, gts, _, _ = setup
    ids = list(gts)
    for tid, m in gts.items():
        save_png(tmp_path / "pred" / f"{tid}.png", m)
    (tmp_path / "pred" / f"{ids[2]}.png").unlink()  # res1: half of the res masks
    (tmp_path / "pred" / f"{ids[1]}.png").unlink()  # gres0: the no-target expression
    args = [
        "eval",
        "--predictions",
        str(tmp_path / "pred"),
        "--data",
        str(root / "ds"),
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "2 prediction(s) missing" in (tmp_path / "out" / "report.md").read_text()
    # the console says so too: the missing mask scores IoU 0 (half of the res masks: mIoU 0.5, not 1), and the
    # missing no-target one is a false positive (N-acc 0, not 1)
    assert "res (2): " in res.output and "mIoU 0.5000" in res.output and "N-acc 0.0000" in res.output
    assert "2 prediction(s) missing (1 no-target): counted as wrong" in res.output
    res = CliRunner().invoke(main, args + ["--skip-missing"])
    assert res.exit_code == 0 and "res (1): " in res.output and "mIoU 1.0000" in res.output
    assert "2 prediction(s) missing (1 no-target): left out of the score (--skip-missing)" in res.output
    save_png(tmp_path / "pred" / f"{ids[0]}.png", np.zeros((5, 5), bool), shape=(5, 5))
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and f"{ids[0]}: prediction is 5x5 (w x h), the image is 32x24" in res.output
    res = CliRunner().invoke(main, args[:1] + args[3:])
    assert res.exit_code != 0 and "exactly one of --checkpoint" in res.output


def test_eval_and_predict_with_everything_on_s3(setup, s3_bucket, tmp_path, monkeypatch):
    """Checkpoint, data and report dir at s3:// URLs give the local run's numbers; nothing is
    staged into the working directory; a missing URL is a one-line error."""
    root, _, model, ckpt = setup
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNILSEG_CACHE_DIR", str(tmp_path / "cache"))
    data, ckpt_url, out = (storage.join(s3_bucket, p) for p in ("ds", "runs/r/latest.pt", "reports/r"))
    write_split(storage.join(data, "val"))
    storage.put_file(ckpt, ckpt_url)
    local = evaluate(str(root / "ds"), str(tmp_path / "local"), checkpoint=str(ckpt), progress=False)
    res = CliRunner().invoke(
        main, ["eval", "--checkpoint", ckpt_url, "--data", data, "--out", out, "--overlays", "2", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert storage.listdir(out) == ["metrics.json", "overlays.png", "report.md"]
    doc = json.loads(storage.read_bytes(storage.join(out, "metrics.json")))
    assert doc["metrics"] == json.loads((tmp_path / "local" / "metrics.json").read_text())["metrics"]
    assert set(doc["metrics"]) == set(local) == {"res", "gres", "sod"}
    assert doc["run"]["overlays"]["path"] == storage.join(out, "overlays.png")
    assert doc["run"]["split"] == "val" and doc["run"]["dataset"] == "ds"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "local"]

    rgb = (np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "img.png")
    res = CliRunner().invoke(
        main,
        [
            "predict",
            "--checkpoint",
            ckpt_url,
            str(tmp_path / "img.png"),
            "the box",
            "--out",
            str(tmp_path / "mask.png"),
        ],
    )
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "mask.png")) > 0, predict(model, rgb, "the box"))

    res = CliRunner().invoke(
        main,
        ["eval", "--checkpoint", storage.join(s3_bucket, "none.pt"), "--data", data, "--out", out, "--no-progress"],
    )
    assert res.exit_code == 1 and res.output.strip() == f"Error: checkpoint {s3_bucket}/none.pt does not exist"
    res = CliRunner().invoke(
        main,
        ["eval", "--checkpoint", ckpt_url, "--data", storage.join(s3_bucket, "nope"), "--out", out, "--no-progress"],
    )
    assert res.exit_code == 1 and "not a shard split" in res.output and len(res.output.strip().splitlines()) == 1
