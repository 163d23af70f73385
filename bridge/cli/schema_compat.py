"""``tracebridge schemas [compat|release]``: the schema table, evolution check and releases.

``tracebridge schemas`` alone still prints the table (it invokes ``schemas_command``);
the group adds:

- ``compat``: check the current ``avro/`` schemas against the released sets, each under
  the rule its stability tag implies (the same rule the registry mode sets on its
  subject), and exit 1 when a stable schema changed incompatibly;
- ``release VERSION``: freeze ``avro/`` as ``avro/released/VERSION/`` (see
  :mod:`bridge.events.releases` for why there).
"""

from __future__ import annotations

import click

from bridge.cli.schemas import schemas_command
from bridge.events.releases import (
    RELEASED_DIR_NAME,
    SchemaSet,
    Verdict,
    current_schemas,
    evaluate,
    release,
    released_sets,
    resolve_against,
)


@click.group("schemas", invoke_without_command=True)
@click.option("--topic-prefix", default="tracebridge", show_default=True)
@click.option("--markdown", is_flag=True, help="Print a Markdown table (as in the README).")
@click.pass_context
def schemas_group(ctx: click.Context, topic_prefix: str, markdown: bool) -> None:
    """List events, their topics, Avro records and stability tags; `compat` checks
    schema evolution, `release` freezes a released set."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(schemas_command, topic_prefix=topic_prefix, markdown=markdown)


def _format(verdicts: list[Verdict]) -> list[str]:
    header = ("schema", "stability", "rule", "compared with", "verdict")
    rows = [
        (
            v.full_name,
            v.stability,
            str(v.level),
            ", ".join(v.compared_with) or "-",
            v.status + (" (policy allows it)" if v.fails and not v.blocking else ""),
        )
        for v in verdicts
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row, verdict in zip([header, *rows], [None, *verdicts], strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if verdict is not None:
            lines.extend(f"    - {problem}" for problem in verdict.problems)
    return lines


@schemas_group.command("compat")
@click.option(
    "--against",
    "against",
    multiple=True,
    help="Compare with this instead of every released set: a released version, a "
    "directory of .avsc files, or git:<ref> (repeatable; given oldest first).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Also fail on experimental schemas that break their rule (the registry would "
    "refuse them on the existing subjects).",
)
def compat_command(against: tuple[str, ...], strict: bool) -> None:
    """Check avro/ against released schema sets under each schema's stability rule.

    \b
    Rules (tracebridge.stability -> level, also set on registry subjects):
      stable        FULL_TRANSITIVE  new reads all old data and all old read new
      experimental  BACKWARD         new reads the last release's data
      proposed, internal  NONE       not checked
    Exit status 1 when a stable schema changed incompatibly or was removed.

    \b
    Examples:
      tracebridge schemas compat
      tracebridge schemas compat --against 0.1.0
      tracebridge schemas compat --against git:origin/main
    """
    try:
        history: list[SchemaSet] = (
            [resolve_against(spec) for spec in against] if against else released_sets()
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if not history:
        click.echo(
            f"No released schema set under {RELEASED_DIR_NAME}/ yet "
            "(`tracebridge schemas release VERSION` records one); nothing to compare with."
        )
        return
    verdicts = evaluate(current_schemas(), history)
    for line in _format(verdicts):
        click.echo(line)
    blocking = [v for v in verdicts if v.blocking]
    failing = [v for v in verdicts if v.fails]
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict.status] = counts.get(verdict.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    click.echo(f"\n{summary}; compared with {', '.join(s.label for s in history)}.")
    if blocking or (strict and failing):
        names = ", ".join(v.full_name for v in (failing if strict else blocking))
        click.echo(f"FAILED: {names} broke the stability policy.", err=True)
        raise SystemExit(1)


@schemas_group.command("release")
@click.argument("version")
def release_command(version: str) -> None:
    """Freeze the current avro/ as released set VERSION (avro/released/VERSION/).

    Run it when cutting a release, after `tracebridge schemas compat` passes, and
    commit the new directory with the release: later changes are checked against it.
    """
    try:
        path = release(version)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    click.echo(path)
