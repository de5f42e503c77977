"""Our training checkpoints round-trip; the released UniLSeg-20 layout loads strictly."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from s3_fixtures import s3_bucket  # noqa: F401 (fixture)

from common.errors import MissingInputError
from shards import storage
from unilseg.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_released_checkpoint,
    load_state_dict_strict,
    map_released_key,
    read_checkpoint_file,
    save_checkpoint,
)
from unilseg.model import build_model, predict
from unilseg.model.swin import relative_position_index

REFERENCE = Path(__file__).parent / "data" / "unilseg20_state_dict.json"


def _inputs(model, batch=2):
    g = torch.Generator().manual_seed(1)
    s = model.config.input_size
    return torch.randn(batch, 3, s, s, generator=g), model.tokenizer(["a dog", "the left zebra"][:batch])


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = build_model("unilseg-tiny")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, ids = _inputs(model)
    model.train()
    model(x, ids)["logits"].mean().backward()  # also moves BatchNorm running stats
    opt.step()
    path = save_checkpoint(tmp_path / "ckpt" / "step-7.pt", model, opt, step=7, extra={"epoch": 1})
    assert path.exists() and not list(path.parent.glob("*.tmp"))

    loaded = load_checkpoint(path)  # builds the model from the saved config
    assert loaded.step == 7 and loaded.extra == {"epoch": 1} and loaded.config == model.config.to_dict()
    model.eval(), loaded.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, ids)["logits"], model(x, ids)["logits"], rtol=0, atol=0)

    torch.manual_seed(5)
    other = build_model("unilseg-tiny")
    opt2 = torch.optim.AdamW(other.parameters(), lr=1e-3)
    load_checkpoint(path, other, opt2)
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    torch.testing.assert_close(opt2.state_dict()["state"][3]["exp_avg"], opt.state_dict()["state"][3]["exp_avg"])


def test_ddp_style_wrapper_is_unwrapped(tmp_path):
    model = build_model("unilseg-tiny")
    wrapper = torch.nn.Module()
    wrapper.module = model
    save_checkpoint(tmp_path / "c.pt", wrapper)
    sd = torch.load(tmp_path / "c.pt", weights_only=True)["model"]
    assert not any(k.startswith("module.") for k in sd)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    model = build_model("unilseg-tiny")
    sd = model.state_dict()
    sd.pop("query_decoder.text_proj.1.running_var")
    sd["pixel_decoder.extra_head.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_state_dict_strict(model, sd, "test")
    msg = str(err.value)
    assert "query_decoder.text_proj.1.running_var" in msg and "pixel_decoder.extra_head.weight" in msg

    sd = model.state_dict()
    sd["pre_fusion.fusion_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match=r"pre_fusion.fusion_proj.weight \(3, 3\)"):
        load_state_dict_strict(model, sd)

    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match=r"unexpected keys \(\d+\): module\.p(osition_features|re_fusion)"):
        load_released_checkpoint(model, tmp_path / "x.pth")  # our names are not the released names
    with pytest.raises(CheckpointError, match="not a unilseg-checkpoint"):
        load_checkpoint(tmp_path / "x.pth", model)


@pytest.mark.parametrize("kind", ["memory", "s3"])
def test_checkpoints_at_urls(request, tmp_path, monkeypatch, kind):
    """Written with one upload, read back through the local cache (mmap peeks included); the
    released layout and a bad file at a URL fail as they do locally."""
    from unilseg.model.loading import is_training_checkpoint, load_model, model_config

    monkeypatch.setenv("UNILSEG_CACHE_DIR", str(tmp_path / "cache"))
    root = f"memory://ckpt-{request.node.name}" if kind == "memory" else request.getfixturevalue("s3_bucket")
    torch.manual_seed(0)
    model = build_model("unilseg-tiny")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loc = storage.join(root, "runs", "r", "latest.pt")
    assert save_checkpoint(loc, model, opt, step=3, extra={"lr": 0.1}) == loc
    assert storage.listdir(storage.join(root, "runs", "r")) == ["latest.pt"]  # nothing staged there
    assert read_checkpoint_file(loc, mmap=True)["step"] == 3
    assert is_training_checkpoint(loc) and model_config(None, loc).to_dict() == model.config.to_dict()
    loaded = load_checkpoint(loc, build_model("unilseg-tiny"), torch.optim.AdamW(model.parameters()))
    assert loaded.step == 3 and loaded.extra == {"lr": 0.1}
    torch.testing.assert_close(loaded.model.state_dict(), model.state_dict())
    torch.testing.assert_close(load_model(loc).state_dict(), model.state_dict())
    # rewritten at the same URL: the new version is read, not the cached one
    save_checkpoint(loc, model, opt, step=4)
    assert read_checkpoint_file(loc, mmap=True)["step"] == 4

    released = {"module.backbone.ln_final.weight": torch.ones(3)}
    storage.write_bytes(storage.join(root, "released.pth"), _torch_bytes({"state_dict": released}))
    with pytest.raises(CheckpointError, match=r"released checkpoint .*released.pth does not match"):
        load_released_checkpoint(build_model("unilseg-tiny"), storage.join(root, "released.pth"))
    storage.write_bytes(storage.join(root, "bad.pt"), b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"not a loadable checkpoint: .*bad.pt: "):
        read_checkpoint_file(storage.join(root, "bad.pt"))
    with pytest.raises(MissingInputError, match=r"checkpoint .*none.pt does not exist"):
        read_checkpoint_file(storage.join(root, "none.pt"))


def _torch_bytes(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_released_key_mapping():
    assert map_released_key("module.backbone.visual.conv1.weight") is None  # CLIP image tower: skipped
    assert map_released_key("module.backbone.ln_final.weight") == "text_encoder.ln_final.weight"
    assert map_released_key("backbone_visual.norm3.bias") == "visual_encoder.norm3.bias"
    assert (
        map_released_key("module.fusion.multihead_attn.in_proj_weight")
        == "pre_fusion.fusion.multihead_attn.in_proj_weight"
    )
    assert map_released_key("module.fusion_proj.bias") == "pre_fusion.fusion_proj.bias"
    assert (
        map_released_key("module.all_fusion_module.2.multihead_attn.out_proj.bias")
        == "pre_fusion.all_fusion_module.2.multihead_attn.out_proj.bias"
    )
    assert map_released_key("module.query_decoder.visual_proj.0.weight") == "query_decoder.visual_proj.0.weight"
    with pytest.raises(KeyError):
        map_released_key("module.something_new.weight")


def _fabricate_released(path):
    """A file laid out like UniLSeg20_no_finetune.pth: {'state_dict': {'module.' + name: tensor}}."""
    g = torch.Generator().manual_seed(0)
    sd = {}
    for e in json.load(open(REFERENCE))["entries"]:
        shape, name = e["shape"], e["name"]
        if name.endswith("relative_position_index"):
            t = relative_position_index(7)
        elif e["dtype"] == "int64":
            t = torch.randint(0, 1000, shape, generator=g)
        elif name.endswith("running_var"):
            t = torch.rand(shape, generator=g) + 0.5
        else:
            t = torch.randn(shape, generator=g) * 0.02
        sd["module." + name] = t
    torch.save({"state_dict": sd, "epoch": 20}, path)
    return sd


@pytest.mark.slow
def test_load_fabricated_released_checkpoint_and_predict(tmp_path):
    path = tmp_path / "UniLSeg20_no_finetune.pth"
    released = _fabricate_released(path)
    assert len(released) == 931
    model = load_released_checkpoint(build_model("unilseg-swin-b"), path)
    torch.testing.assert_close(
        model.text_encoder.token_embedding.weight, released["module.backbone.token_embedding.weight"]
    )
    torch.testing.assert_close(
        model.visual_encoder.layers[2].blocks[17].mlp.fc2.weight,
        released["module.backbone_visual.layers.2.blocks.17.mlp.fc2.weight"],
    )
    torch.testing.assert_close(
        model.pre_fusion.all_fusion_module[1].multihead_attn.in_proj_weight,
        released["module.all_fusion_module.1.multihead_attn.in_proj_weight"],
    )
    torch.testing.assert_close(
        model.query_decoder.text_proj[1].running_var, released["module.query_decoder.text_proj.1.running_var"]
    )
    del released
    img = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    mask = predict(model, img, "the man on the left")
    assert mask.shape == (240, 320) and mask.dtype == bool


class _Touch:
    """Unpickling this object runs Path.touch(marker): any unsafe load leaves the marker behind."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_files_that_are_no_checkpoint_are_one_line_errors_in_every_command(tmp_path, monkeypatch):
    """A plain pickle, a torch file holding an object weights_only refuses, and a truncated
    torch file: `predict`, `eval` and `train --init` each say "not a loadable checkpoint: ..."
    in one line, exit non-zero, and never unpickle the file unsafely."""
    from click.testing import CliRunner
    from eval_fixtures import write_split
    from PIL import Image

    import unilseg.train
    from cli import main

    marker = tmp_path / "unpickled-unsafely"
    why = _write_bad_checkpoints(tmp_path, marker)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "img.png")
    write_split(tmp_path / "ds" / "val")

    def no_ray(*a, **k):
        raise AssertionError("Ray must not start for a bad init checkpoint")

    monkeypatch.setattr(unilseg.train, "ensure_ray", no_ray)
    runner = CliRunner()
    for name in why:
        ckpt = str(tmp_path / name)
        for command, args in _commands_loading(ckpt, tmp_path).items():
            res = runner.invoke(main, args)
            lines = res.output.strip().splitlines()
            assert res.exit_code == 1 and len(lines) == 1, (command, name, res.output)
            assert lines[0].startswith(f"Error: not a loadable checkpoint: {ckpt}: "), (command, name, lines)
            assert why[name] in lines[0], (command, name, lines)
    assert not marker.exists()
    assert not (tmp_path / "m.png").exists() and not (tmp_path / "rep").exists() and not (tmp_path / "run").exists()


def _write_bad_checkpoints(tmp_path: Path, marker: Path) -> dict[str, str]:
    """plain.pkl, object.pt and truncated.pt in tmp_path (unpickling either of the first two
    unsafely creates ``marker``); returns each file's expected reason."""
    import pickle

    bad = {
        "plain.pkl": pickle.dumps({"state_dict": {"w": [1.0, 2.0]}, "x": _Touch(marker)}),
        "object.pt": None,
        "truncated.pt": None,
    }
    torch.save({"state_dict": {}, "x": _Touch(marker)}, tmp_path / "object.pt")
    save_checkpoint(tmp_path / "good.pt", build_model("unilseg-tiny"), step=1)
    good = (tmp_path / "good.pt").read_bytes()
    bad["truncated.pt"] = good[: len(good) // 2]
    for name, data in bad.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    return {
        "plain.pkl": "safe (weights_only) loading refuses",
        "object.pt": "safe (weights_only) loading refuses",
        "truncated.pt": "truncated or not a torch checkpoint",
    }


def _commands_loading(ckpt: str, tmp_path: Path) -> dict[str, list[str]]:
    """The arguments of `predict`, `eval` and `train --init` given the checkpoint ``ckpt``."""
    return {
        "predict": [
            "predict",
            str(tmp_path / "img.png"),
            "a box",
            "--checkpoint",
            ckpt,
            "--out",
            str(tmp_path / "m.png"),
        ],
        "eval": [
            "eval",
            "--checkpoint",
            ckpt,
            "--data",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "rep"),
            "--no-progress",
        ],
        "train": [
            "train",
            "--init",
            ckpt,
            "--preset",
            "unilseg-tiny",
            "--data",
            str(tmp_path / "ds" / "val"),
            "--out",
            str(tmp_path / "run"),
        ],
    }
