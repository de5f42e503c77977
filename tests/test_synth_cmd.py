from click.testing import CliRunner

from cli.synth_cmd import command


def test_synth_shapes_command(tmp_path):
    result = CliRunner().invoke(
        command, ["shapes", "--out", str(tmp_path / "s"), "--images", "5", "--seed", "2", "--size", "64"]
    )
    assert result.exit_code == 0, result.output
    assert "5 images" in result.output and "refs" in result.output
    assert len(list((tmp_path / "s/images").glob("*.png"))) == 5 and (tmp_path / "s/refs(unc).p").exists()
    bad = CliRunner().invoke(command, ["shapes", "--out", str(tmp_path / "t"), "--images", "0"])
    assert bad.exit_code != 0
