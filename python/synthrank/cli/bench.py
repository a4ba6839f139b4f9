"""Click commands of this stage, registered by `synthrank.cli`."""

from __future__ import annotations

from pathlib import Path

import click

from synthrank.cli.common import BadInputError
from synthrank.errors import InvalidArgumentError, SynthrankError
from synthrank.progress import progress_bar

# The measured stages (synthrank.bench.STAGES), named here so that loading the CLI does not import the
# bench package and numpy; tests/test_bench.py checks the two lists agree.
BENCH_STAGES = ("chunk", "sample", "dedup", "dedup-queries", "negatives", "negatives-judged")


@click.command("bench")
@click.option(
    "--stage",
    "stages",
    multiple=True,
    type=click.Choice(BENCH_STAGES),
    help="Stage to measure (repeatable; default: all).",
)
@click.option(
    "--size",
    "sizes",
    multiple=True,
    type=click.IntRange(min=1),
    default=(10_000,),
    show_default=True,
    help="Items per run: documents, passages, texts or queries (repeatable).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write results here."
)
@click.option("--threads", type=click.IntRange(min=0), help="Native worker threads (default: all cores).")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Runs each (one if it takes over 5 s); the fastest is kept.",
)
@click.option(
    "--sample-cap",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Largest input the python twin and peers get; above it their seconds are extrapolated.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic inputs.")
@click.option(
    "--allow-debug-build", is_flag=True, help="Measure a debug native build anyway (for tests only)."
)
def bench_command(
    stages: tuple[str, ...],
    sizes: tuple[int, ...],
    json_path: Path | None,
    threads: int | None,
    repeat: int,
    sample_cap: int,
    seed: int,
    allow_debug_build: bool,
) -> None:
    """Time the native core against its python twin and peer libraries on seeded synthetic data.

    Prints seconds, items/s, peak memory and whether outputs match, per stage x size x
    implementation. Refuses a debug build of the native extension. `dedup` is ingest's
    near-duplicate index on ~600-character passages added in batches; `dedup-queries` the filter
    stage's one-call `near_duplicates` on short texts.

    \b
    Example:
      synthrank bench --stage dedup --stage negatives --size 10000 --size 100000 --json bench.json
    """
    from synthrank import bench
    from synthrank.console import table_console

    chosen = stages or BENCH_STAGES
    for line in bench.missing_peers(chosen):
        click.echo(line, err=True)
    try:
        with progress_bar("bench", total=len(chosen) * len(sizes), unit="runs") as bar:
            results = bench.run_bench(
                chosen,
                sizes,
                threads=threads,
                repeat=repeat,
                sample_cap=sample_cap,
                seed=seed,
                allow_debug_build=allow_debug_build,
                on_stage_done=lambda _: bar.advance(),
            )
    except (bench.DebugBuildError, bench.NativeUnavailableError, InvalidArgumentError) as error:
        raise BadInputError(str(error)) from error
    except SynthrankError as error:  # e.g. a native panic: the benchmark itself failed
        raise click.ClickException(str(error)) from error
    console = table_console(min_width=120)  # the table's columns wrap badly below this
    console.print(bench.render_table(results))
    if json_path is not None:
        try:
            bench.write_json(json_path, results, bench.environment(threads, repeat, sample_cap, seed))
        except OSError as error:
            raise BadInputError(f"--json: cannot write {json_path}: {error.strerror}") from error
        click.echo(f"wrote {json_path}")


COMMANDS: list[click.Command] = [bench_command]
