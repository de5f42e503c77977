"""`unilseg convert FORMAT SRC --out DST [--split S ...]`: every split of the source, each to DST/<split>."""

from __future__ import annotations

import click

from shards.converters import converter_names
from shards.writer import DEFAULT_MAX_COUNT


def _parse_options(pairs: tuple[str, ...]) -> dict[str, object]:
    """k=v pairs -> kwargs; true/false/ints are converted."""
    out: dict[str, object] = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--option")
        k, v = pair.split("=", 1)
        low = v.lower()
        out[k.replace("-", "_")] = True if low == "true" else False if low == "false" else int(v) if v.isdigit() else v
    return out


class _ConvertCommand(click.Command):
    """`--help` ends with the registered formats (read from the registry only when asked)."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(f"Formats: {', '.join(converter_names())}.")


@click.command("convert", cls=_ConvertCommand)
@click.argument("fmt", metavar="FORMAT")
@click.argument("src")
@click.option("--out", required=True, help="Dataset dir; each split goes to OUT/SPLIT.")
@click.option(
    "--split",
    "splits",
    multiple=True,
    help="Convert only this split (repeatable) [default: every "
    "split the source has; formats without splits (sod, cod) write train].",
)
@click.option("--images", help="Image folder, for formats whose annotations and images live apart (refcoco, coco...).")
@click.option(
    "--max-count", default=DEFAULT_MAX_COUNT, show_default=True, type=click.IntRange(min=1), help="Samples per shard."
)
@click.option("--option", "options", multiple=True, help="Converter option key=value (repeatable).")
def command(
    fmt: str, src: str, out: str, splits: tuple[str, ...], images: str | None, max_count: int, options: tuple[str, ...]
) -> None:
    """Convert a labeled dataset in its own layout into shards, every split it has.

    FORMAT is one of the registered converters (listed below); --option k=v passes the
    converter's own options.
    """
    from shards.converters.convert import convert, plan_splits  # imports every converter: only when converting

    if fmt not in converter_names():
        raise click.BadParameter(f"unknown format {fmt!r}; known: {', '.join(converter_names())}", param_hint="FORMAT")
    kwargs = _parse_options(options)
    if images:
        kwargs["images"] = images
    todo, found = plan_splits(fmt, src, list(splits) or None, **kwargs)
    if found is None:
        click.echo(f"{src}: a {fmt} source has no splits of its own; writing {', '.join(todo)}")
    else:
        click.echo(f"{src}: splits found: {', '.join(found)}; converting {', '.join(todo)}")
    for split in todo:  # a summary line as each split is done
        summary = convert(fmt, src, out, split, max_count=max_count, **kwargs)
        c = summary["counts"]
        click.echo(
            f"{out}/{split}: {c['samples']} images, {c['targets']} targets in {c['shards']} shards "
            f"(this run: {summary['written']} written, {summary['skipped']} already there, "
            f"{summary['quarantined']} quarantined -> quarantine.jsonl)"
        )
