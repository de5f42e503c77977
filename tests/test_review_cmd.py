"""cli/review_cmd.py: `unilseg review export|import` say what is wrong in one line (no Label
Studio, a rule that picks nothing, a split that is not one); the round trip itself is in
tests/test_export.py (a real server)."""

from click.testing import CliRunner
from shard_fixtures import make_sample

from cli import main
from shards.writer import ShardWriter


def _split(tmp_path):
    with ShardWriter(tmp_path / "d" / "train") as w:
        w.write(make_sample(0))
    return tmp_path / "d"


def test_no_label_studio_is_one_line(tmp_path, monkeypatch):
    for var in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    res = CliRunner().invoke(main, ["review", "export", str(_split(tmp_path)), "--project", "p", "--sample", "1"])
    assert res.exit_code == 1 and "no Label Studio: give --url and --api-key" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(
        main, ["review", "import", "--project", "p", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 1 and "no Label Studio" in res.output and not (tmp_path / "o").exists()


def test_a_server_that_does_not_answer_is_one_line(tmp_path):
    from common.processes import free_port

    url = f"http://127.0.0.1:{free_port()}"
    res = CliRunner().invoke(
        main,
        ["review", "export", str(_split(tmp_path)), "--project", "p", "--sample", "1", "--url", url, "--api-key", "k"],
    )
    assert res.exit_code == 1 and f"Label Studio at {url} does not answer" in res.output


def test_bad_rules_and_missing_splits_are_one_line(tmp_path):
    data = str(_split(tmp_path))
    for args, msg in [
        ([data, "--project", "p"], "say which targets to review"),
        ([data, "--project", "p", "--lowest", "3"], "need --by SCORE"),
        ([data, "--project", "p", "--by", "iou", "--lowest", "3", "--below", "0.1"], "not both"),
        ([str(tmp_path / "none"), "--project", "p", "--sample", "2"], "not a shard split"),
    ]:
        res = CliRunner().invoke(main, ["review", "export", *args])
        assert res.exit_code == 1 and msg in res.output, res.output


def test_a_stack_started_without_label_studio_is_restarted_with_it(tmp_path, monkeypatch, capsys):
    """`make demo` starts the stack before Label Studio is installed; `make review` installs it and
    restarts that stack (its env file has no LABEL_STUDIO_URL), then waits for the server."""
    import cli.stack as stack
    from cli.stack_config import StackConfig

    cfg = StackConfig(state_dir=str(tmp_path / "state"))
    calls, started = [], []

    def up(c):  # the first start is `make demo`'s, before Label Studio was installed
        calls.append("up")
        c.env_path.parent.mkdir(parents=True, exist_ok=True)
        c.env_path.write_text("PREFECT_API_URL=x\n" + ("LABEL_STUDIO_URL=y\n" if started else ""))
        started.append(1)

    monkeypatch.setattr(stack, "label_studio_installed", lambda: True)
    monkeypatch.setattr(stack, "up", up)
    monkeypatch.setattr(stack, "down", lambda c: calls.append("down"))
    monkeypatch.setattr(stack, "wait_healthy", lambda *a, **k: calls.append("wait"))
    stack.wait_label_studio(cfg)
    assert calls == ["up", "down", "up", "wait"] and "restarting it with Label Studio" in capsys.readouterr().out
    calls.clear()
    stack.wait_label_studio(cfg)  # a stack with Label Studio is left running
    assert calls == ["up", "wait"]
