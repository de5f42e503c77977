import json

import numpy as np
from click.testing import CliRunner
from conftest import encode
from s3_fixtures import s3_bucket  # noqa: F401 (fixture)

from cli import main


def _sod_source(root, n=3):
    for i in range(n):
        (root / "X-Image").mkdir(parents=True, exist_ok=True)
        (root / "X-Mask").mkdir(parents=True, exist_ok=True)
        (root / "X-Image" / f"{i}.jpg").write_bytes(encode(np.full((12, 12, 3), 40 * i, np.uint8), "JPEG"))
        m = np.zeros((12, 12), np.uint8)
        m[2:6, 2:6] = 255
        (root / "X-Mask" / f"{i}.png").write_bytes(encode(m))


def test_convert_stats_verify_preview(tmp_path):
    _sod_source(tmp_path / "src")
    r = CliRunner()
    res = r.invoke(main, ["convert", "sod", str(tmp_path / "src"), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    assert "3 images, 3 targets" in res.output
    res = r.invoke(main, ["shards", "stats", str(tmp_path / "ds"), "--json"])
    assert json.loads(res.output)[str(tmp_path / "ds" / "train")]["by_task"] == {"sod": 3}
    res = r.invoke(main, ["shards", "verify", str(tmp_path / "ds")])
    assert res.exit_code == 0 and "OK" in res.output
    res = r.invoke(main, ["shards", "preview", str(tmp_path / "ds"), "--out", str(tmp_path / "p.png")])
    assert res.exit_code == 0 and (tmp_path / "p.png").stat().st_size > 0
    (tmp_path / "ds" / "train" / "shard-000000.tar").unlink()
    res = r.invoke(main, ["shards", "verify", str(tmp_path / "ds")])
    assert res.exit_code == 1 and "shard-000000.tar is missing" in res.output


def test_unknown_format_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(main, ["convert", "nope", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "unknown format" in res.output


def test_convert_stats_verify_preview_on_s3(tmp_path, s3_bucket):
    from shards import storage

    _sod_source(tmp_path / "src")
    ds, sheet = storage.join(s3_bucket, "data", "sod"), storage.join(s3_bucket, "previews", "sod.png")
    r = CliRunner()
    res = r.invoke(main, ["convert", "sod", str(tmp_path / "src"), "--out", ds])
    assert res.exit_code == 0 and "3 images, 3 targets" in res.output, res.output
    res = r.invoke(main, ["shards", "stats", ds, "--json"])
    assert json.loads(res.output)[storage.join(ds, "train")]["by_task"] == {"sod": 3}
    res = r.invoke(main, ["shards", "verify", ds])
    assert res.exit_code == 0 and f"OK   {ds}/train" in res.output, res.output
    res = r.invoke(main, ["shards", "preview", ds, "--out", sheet])
    assert res.exit_code == 0 and storage.read_bytes(sheet)[:8] == b"\x89PNG\r\n\x1a\n"
    for cmd in (["verify"], ["stats"], ["preview", "--out", str(tmp_path / "p.png")]):
        for missing in (storage.join(s3_bucket, "nothing"), str(tmp_path / "nothing")):
            res = r.invoke(main, ["shards", cmd[0], missing, *cmd[1:]])
            assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1, (cmd, res.output)
            assert missing in res.output
