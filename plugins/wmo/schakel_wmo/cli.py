"""``gateway wmo …``: the wmo plugin's commands (loaded through the ``gateway.commands`` entry point)."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

app = typer.Typer(help="iWmo: batch import of messages.", no_args_is_help=True)
console = Console(stderr=True)


@app.command("import")
def import_batch(
    path: Annotated[Path, typer.Argument(help="A ZIP of iWmo XML messages, one XML message, or a folder of them",
                                         exists=True, readable=True)],
    retours: Annotated[Optional[Path], typer.Option(help="Write each message's retour into this folder")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write one JSON line per message (its outcome) here")] = None,
) -> None:
    """Import many iWmo messages, one by one, each with its own outcome, with a progress bar."""
    from gateway import cli as core
    from gateway.core.auth import Principal
    from gateway.core.problems import Problem
    from schakel_wmo import batch

    data = _read(path)
    gw = core._gateway()
    importer = Principal(token_id="cli", name=f"cli:{getpass.getuser()}", role="beheerder", access_point="cli")
    if retours:
        retours.mkdir(parents=True, exist_ok=True)
    written = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console) as progress:
        task = progress.add_task("importing", total=_count(data))

        def advance(outcome: "batch.Outcome") -> None:
            nonlocal written
            progress.advance(task)
            if retours and outcome.retour:
                written += 1
                # Our own numbering, never the archive's names: nothing from the batch names a file.
                (retours / f"retour-{written:06d}.xml").write_bytes(outcome.retour)

        try:
            outcomes = asyncio.run(batch.run(gw, importer, data, advance))
        except Problem as problem:  # the batch as a whole (empty, unreadable)
            core._fail(problem.detail)
            return
    if report:
        with report.open("w") as handle:
            for outcome in outcomes:
                handle.write(json.dumps(outcome.public(), ensure_ascii=False) + "\n")
    counts = batch.summary(outcomes)
    console.print(f"{counts['total']} messages: {counts['geaccepteerd']} geaccepteerd, "
                  f"{counts['afgekeurd']} afgekeurd (retour with codes), {counts['fout']} fout")
    for outcome in outcomes:
        if outcome.outcome != "geaccepteerd":
            console.print(f"  {outcome.name}: {outcome.outcome} {outcome.problem or ','.join(outcome.retourcodes)}")
    if counts["fout"] or counts["afgekeurd"]:
        raise typer.Exit(2)


def _read(path: Path) -> bytes:
    if not path.is_dir():
        return path.read_bytes()
    import io
    import zipfile

    # A folder becomes an archive in memory, so both take one path through the importer.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(path.glob("*.xml")):
            archive.writestr(file.name, file.read_bytes())
    return buffer.getvalue()


def _count(data: bytes) -> int | None:
    import io
    import zipfile

    if not data.startswith(b"PK"):  # every ZIP, even an empty one, starts so
        return 1
    try:
        return sum(1 for i in zipfile.ZipFile(io.BytesIO(data)).infolist() if not i.is_dir())
    except zipfile.BadZipFile:
        return None


@app.command("plannen")
def plans(status: Annotated[Optional[str], typer.Option(help="Only these, comma separated: te_laat, bijna, open, "
                                                              "wacht_op_arrangement, opgeleverd, onbekend")] = None) -> None:
    """Gezinsactieplannen and their 10-day deadlines: what is overdue comes first."""
    from rich.table import Table

    from gateway import cli as core
    from schakel_wmo.api import plans_due

    gw = core._gateway()

    async def read() -> list[dict]:
        gw.http = gw.new_http_client()  # the ECD is asked whether each draft was made final
        try:
            return await plans_due(gw)
        finally:
            await gw.http.aclose()

    items = asyncio.run(read())
    if status:
        items = [i for i in items if i["status"] in set(status.split(","))]
    order = {"te_laat": 0, "bijna": 1, "onbekend": 2, "open": 3, "wacht_op_arrangement": 4, "opgeleverd": 5}
    table = Table("status", "uiterlijk", "dagen", "plan", "gemeente", "dossier")
    for item in sorted(items, key=lambda i: (order.get(i["status"], 9), i["due"] or "")):
        table.add_row(item["status"], item["due"] or "-", "" if item["days_left"] is None else str(item["days_left"]),
                      item["plan_id"] or "", item["gemeentecode"] or "", item["dossier_id"] or "")
    Console().print(table)
