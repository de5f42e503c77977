"""`unilseg train --data DST[:WEIGHT] ... --out RUN [--workers N] [--steps S] ...`.

Every option but --data, --out and --no-augment is derived from TrainConfig (one definition).
"""

from __future__ import annotations

import click

from cli.options import pick, settings_options, verbose_option
from unilseg.data.mixing import parse_data_spec
from unilseg.train_config import TrainConfig


def _data_specs(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[tuple[str, float]]:
    try:
        return [parse_data_spec(v) for v in value]
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


@click.command("train")
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    callback=_data_specs,
    metavar="DST[:WEIGHT]",
    help="Split dir (DATA_ROOT/NAME/SPLIT) or dataset dir (its train split), with a mixing weight "
    "(default 1). Repeatable.",
)
@click.option(
    "--out",
    required=True,
    help="Run dir: checkpoints, metrics, Ray state. An existing run resumes from its latest checkpoint.",
)
@click.option("--no-augment", is_flag=True, help="Letterbox only: no crop/scale/flip/colour jitter.")
@verbose_option
@settings_options(TrainConfig)
def command(data: list[tuple[str, float]], out: str, no_augment: bool, **settings) -> None:
    """Train UniLSeg with Ray Train on shard datasets mixed by weight.

    Prints one line per logged step (--log-every) from rank 0, worker warnings and a summary
    with the broken targets skipped; too many of them (--max-skipped-fraction) stop training
    with one error line. --verbose adds what Ray and its workers print.
    """
    from unilseg.train import run_training  # imports Ray Train and torch: seconds, only when training
    from unilseg.train_progress import skipped_text

    cfg = TrainConfig(data=data, out=out, augment=None if no_augment else {}, **pick(settings, TrainConfig))
    result = run_training(cfg, echo=click.echo)
    m = result["metrics"]
    summary = ", ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, float))
    click.echo(
        f"step {result['step']}: {result['checkpoint']}"
        + (f" ({summary})" if summary else "")
        + skipped_text(m, "; ", always=True)
        + (f"; loss curve {result['loss_curve']}" if result.get("loss_curve") else "")
    )
