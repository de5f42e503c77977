"""`unilseg train --preset P --data DST[:WEIGHT] ... --out RUN [--workers N] [--gpus] [--steps S]`."""

from __future__ import annotations

import click


def _data_specs(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[tuple[str, float]]:
    from unilseg.data import parse_data_spec

    try:
        return [parse_data_spec(v) for v in value]
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


@click.command("train")
@click.option("--preset", default=None, help="Model preset name or JSON path [unilseg-tiny; with --init of our "
              "checkpoint: its config].")
@click.option("--data", "data", multiple=True, required=True, callback=_data_specs, metavar="DST[:WEIGHT]",
              help="Split dir (DATA_ROOT/NAME/SPLIT) or dataset dir (its train split), with a mixing weight "
                   "(default 1). Repeatable.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run dir: checkpoints, metrics, "
              "Ray state. An existing run resumes from its latest checkpoint.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Ray Train workers.")
@click.option("--gpus", is_flag=True, help="One GPU per worker (nccl) instead of CPU (gloo).")
@click.option("--steps", default=1000, show_default=True, type=click.IntRange(min=1), help="Total optimizer steps.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=2), help="Global batch size.")
@click.option("--lr", default=1e-3, show_default=True, type=float, help="Peak AdamW learning rate.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Training-time budget: stop and save when it is used (the schedule follows the clock).")
@click.option("--checkpoint-every", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--log-every", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--init", type=click.Path(exists=True, dir_okay=False), help="Start from this checkpoint (ours or "
              "the released UniLSeg20_no_finetune.pth with --preset unilseg-swin-b) when RUN has none.")
@click.option("--seed", default=0, show_default=True)
@click.option("--loader-workers", default=1, show_default=True, type=click.IntRange(min=0),
              help="DataLoader processes per Ray worker.")
@click.option("--no-augment", is_flag=True, help="Letterbox only: no crop/scale/flip/colour jitter.")
@click.option("--max-failures", default=2, show_default=True, type=click.IntRange(min=0),
              help="Worker-group restarts allowed (each resumes from the last checkpoint).")
@click.option("--ray-address", default=None, help="Ray cluster address (default: UNILSEG_RAY_ADDRESS or a "
              "private local Ray on 127.0.0.1).")
def command(preset: str | None, data: list[tuple[str, float]], out: str, workers: int, gpus: bool, steps: int,
            batch_size: int, lr: float, minutes: float | None, checkpoint_every: int, log_every: int, init: str | None, seed: int,
            loader_workers: int, no_augment: bool, max_failures: int, ray_address: str | None) -> None:
    """Train UniLSeg with Ray Train on shard datasets mixed by weight."""
    from unilseg.train import TrainConfig, run_training

    if preset is None and init is None:
        preset = "unilseg-tiny"
    try:
        cfg = TrainConfig(preset=preset, data=data, out=out, workers=workers, gpus=gpus, steps=steps,
                          batch_size=batch_size, lr=lr, checkpoint_every=checkpoint_every, log_every=log_every,
                          init=init, seed=seed, num_loader_workers=loader_workers, max_failures=max_failures,
                          augment=None if no_augment else {}, ray_address=ray_address,
                          time_limit_s=minutes * 60 if minutes else None)
        result = run_training(cfg)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    m = result["metrics"]
    summary = ", ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, float))
    click.echo(f"step {result['step']}: {result['checkpoint']}" + (f" ({summary})" if summary else ""))
