"""`mlops`: train, inspect and predict from a shell."""

from __future__ import annotations

import contextlib
import os

# Before pyarrow loads numpy: OpenBLAS starts a thread per core that spins ~0.1 CPU-s at
# every start (3.6% of a 2M-row predict), and this command never multiplies a matrix.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# gRPC's C core logs its own lines on stderr ("ssl_transport_security.cc:2563] Handshake
# failed ..."), around the one line the command prints for the same failure.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
# Without a terminal, typer drew a usage error in a box 80 columns wide, cutting its sentence
# across lines ("the port must  │\n│ be from 1"): click's plain "Error: ..." line instead.
if not os.isatty(2):
    os.environ.setdefault("TYPER_USE_RICH", "0")

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlops_client.cli_output import RowsProgress, TrainingProgress, err, out, table
from mlops_client.cli_support import (
    EXIT_HELP,
    Exit,
    Settings,
    ca_roots,
    feature_columns,
    feature_types_of,
    interrupted,
    model_ref,
    parse_params,
    quiet_stdout,
    reported,
    rows_file,
    service_address,
    show,
    sigterm_as_ctrl_c,
    token_sent,
    train_hint,
    tune_process,
)
from mlops_client.client import Client
from mlops_client.errors import InvalidArgument
from mlops_client.results import Job, ModelVersion
from mlops_client.uploads import Resources

app = typer.Typer(
    help=f"Train, inspect and predict with the mlops service. {EXIT_HELP}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
Params = Annotated[list[str], typer.Option("-p", "--param", help="Hyperparameter NAME=VALUE.")]
CancelOnInterrupt = Annotated[bool, typer.Option(help="Ctrl-C (or SIGTERM) cancels the job.")]
Cpus = Annotated[float | None, typer.Option(help="CPUs the job reserves (default: the service's).")]
MemoryMb = Annotated[
    int | None,
    typer.Option("--memory-mb", help="Memory the job reserves, in MiB (Ray executor only)."),
]


@app.callback()
def main(
    ctx: typer.Context,
    # --server, not --target: `train --target` names the label column, as users expect.
    server: Annotated[
        str, typer.Option("--server", envvar="MLOPS_TARGET", help="The service's host:port.")
    ] = "127.0.0.1:50051",
    token: Annotated[str | None, typer.Option(envvar="MLOPS_TOKEN", help="Bearer token.")] = None,
    tls: Annotated[bool, typer.Option(help="Use TLS with the system's roots.")] = False,
    ca_file: Annotated[str | None, typer.Option(help="PEM CA bundle; implies TLS.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Reach the service at --server (or MLOPS_TARGET) with --token (or MLOPS_TOKEN)."""
    tune_process()
    ctx.call_on_close(sigterm_as_ctrl_c())
    ca_file = ca_roots(ca_file)
    target = service_address(server, bool(ca_file or tls))
    ctx.obj = Settings(target, token_sent(token), ca_file or tls, json)


def _version_lines(v: ModelVersion) -> None:
    metrics = v.metrics
    out.print(f"{v.ref}  kind {v.kind}  trained on {v.train_rows} rows", markup=False)
    out.print(f"target {v.signature.target_column}: {', '.join(v.signature.classes)}", markup=False)
    if metrics is not None:
        out.print(
            f"holdout accuracy {metrics.accuracy:.4f}  f1_macro {metrics.f1_macro:.4f}  "
            f"log_loss {metrics.log_loss:.4f}",
            markup=False,
        )


def _follow(client: Client, settings: Settings, job: Job, cancel_on_interrupt: bool) -> None:
    try:
        with TrainingProgress() as bar:
            version = client.wait(job.job_id, bar.update)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (cli_support.Terminated)
        if cancel_on_interrupt:
            client.cancel(job.job_id)
            err.print(f"cancelled job {job.job_id}", markup=False)
        else:
            err.print(
                f"stopped following job {job.job_id}; it keeps running.\n"
                f"  follow it: mlops jobs {job.job_id} --watch\n"
                f"  cancel it: mlops cancel {job.job_id}",
                markup=False,
            )
        raise typer.Exit(interrupted(exc)) from None
    show(settings, version, lambda: _version_lines(version))


@app.command()
def kinds(ctx: typer.Context) -> None:
    """List the model kinds and their hyperparameters."""
    settings: Settings = ctx.obj
    with reported(), settings.client() as client:
        found = client.kinds()
        rows = [
            (k.name, h.name, h.type, h.default, h.description)
            for k in found
            for h in k.hyperparameters
        ]
        show(
            settings,
            found,
            lambda: table(["kind", "hyperparameter", "type", "default", "about"], rows),
        )


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[
        Path, typer.Argument(help="CSV (.tsv: tabs) or Parquet training rows; - reads stdin.")
    ],
    kind: Annotated[str, typer.Option(help="Model kind, see `mlops kinds`.")],
    target: Annotated[str, typer.Option("--target", "-t", help="Label column.")],
    param: Params = [],  # noqa: B006 - typer reads the default, never mutates it
    feature: Annotated[
        list[str],
        typer.Option(
            "--feature",
            "-f",
            metavar="COLUMN",
            help="A column the model reads (repeat; default: every column but the target).",
        ),
    ] = [],  # noqa: B006
    ignore: Annotated[
        list[str], typer.Option(metavar="COLUMN", help="A column to leave out (repeat).")
    ] = [],  # noqa: B006
    categorical: Annotated[
        list[str],
        typer.Option(metavar="COLUMN", help="Read a column as categories, e.g. a numeric code."),
    ] = [],  # noqa: B006
    numeric: Annotated[
        list[str], typer.Option(metavar="COLUMN", help="Read a column as numbers.")
    ] = [],  # noqa: B006
    name: Annotated[str, typer.Option(help="Model name.")] = "",
    holdout: Annotated[float | None, typer.Option(help="Share of rows held out.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of split and model.")] = None,
    allow_many_classes: Annotated[
        bool, typer.Option(help="Allow a target with many classes.")
    ] = False,
    cpus: Cpus = None,
    memory_mb: MemoryMb = None,
    wait: Annotated[bool, typer.Option(help="Follow the job to its end.")] = True,
    cancel_on_interrupt: CancelOnInterrupt = False,
) -> None:
    """Upload a table and train a new model, with a live progress bar."""
    settings: Settings = ctx.obj
    params = parse_params(param)
    types = feature_types_of(categorical, numeric)
    with reported(), rows_file(data) as data, settings.client() as client:
        features = feature_columns(data, target, feature, ignore)
        try:
            job = client.train(
                data, kind, target, params, wait=False, name=name, holdout_fraction=holdout,
                seed=seed, allow_many_classes=allow_many_classes, feature_columns=features,
                feature_types=types, resources=resources_of(cpus, memory_mb),
            )  # fmt: skip
        except InvalidArgument as refused:
            refused.message += train_hint(refused)
            raise
        err.print(f"job {job.job_id} {job.state}", markup=False)
        if not wait:
            show(settings, job, lambda: out.print(job.job_id, markup=False))
            return
        _follow(client, settings, job, cancel_on_interrupt)


@app.command()
def retrain(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="MODEL or MODEL:VERSION to start from.")],
    param: Params = [],  # noqa: B006 - typer reads the default, never mutates it
    data: Annotated[
        Path | None,
        typer.Option(help="New training rows (default: the parent's); - reads stdin."),
    ] = None,
    cpus: Cpus = None,
    memory_mb: MemoryMb = None,
    cancel_on_interrupt: CancelOnInterrupt = False,
) -> None:
    """Train the next version of a model."""
    settings: Settings = ctx.obj
    model_id, version = model_ref(model)
    with (
        reported(),
        rows_file(data) if data else contextlib.nullcontext() as data,
        settings.client() as client,
    ):
        job = client.retrain(
            model_id, parse_params(param), version=version, data=data, wait=False,
            resources=resources_of(cpus, memory_mb),
        )  # fmt: skip
        assert isinstance(job, Job)  # wait=False returns the queued job
        err.print(f"job {job.job_id} {job.state}", markup=False)
        _follow(client, settings, job, cancel_on_interrupt)


@app.command()
def predict(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="MODEL or MODEL:VERSION.")],
    data: Annotated[
        Path, typer.Argument(help="CSV (.tsv: tabs) or Parquet rows, any size; - reads stdin.")
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="CSV, .tsv or Parquet answers; - for CSV on stdout."),
    ],
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows per streamed batch.")] = 64 * 1024,
) -> None:
    """Stream a file through the model into another file, in bounded memory."""
    settings: Settings = ctx.obj
    model_id, version = model_ref(model)
    to_stdout = str(output) == "-"
    if to_stdout and settings.json:
        raise typer.BadParameter("prints to standard output, where -o - sends the answers",
                                 param_hint="--json")  # fmt: skip
    with reported(), rows_file(data) as data, settings.client() as client, RowsProgress() as bar:
        try:
            summary = client.predict_file(
                model_id, data, sys.stdout.buffer if to_stdout else output, version,
                batch_rows=batch_rows, progress=bar.advance,
            )  # fmt: skip
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM
            # The answers go to a hidden file that takes -o's name only once all are written.
            kept = "" if to_stdout else f"; {output} is as it was"
            err.print(f"interrupted{kept}", markup=False)
            raise typer.Exit(interrupted(exc)) from None
        except BrokenPipeError:
            # What reads the answers stopped (`| head`): stop too, quietly, as other tools do.
            quiet_stdout()
            raise typer.Exit(0) from None
    rate = summary.rows / max(summary.seconds, 1e-9)
    where = "standard output" if to_stdout else output
    show(settings, summary, lambda: err.print(
        f"{summary.rows:,} rows predicted by {model_id}:{summary.version} into {where} "
        f"in {summary.seconds:.1f} s ({rate:,.0f} rows/s)", markup=False))  # fmt: skip


@app.command()
def models(ctx: typer.Context) -> None:
    """List the models, newest first."""
    settings: Settings = ctx.obj
    with reported(), settings.client() as client:
        found = client.models()
        rows = [(m.model_id, m.kind, m.latest_version, m.name, m.updated) for m in found]
        show(settings, found, lambda: table(["model", "kind", "latest", "name", "updated"], rows))


@app.command()
def versions(
    ctx: typer.Context, model: Annotated[str, typer.Argument(help="MODEL (its id).")]
) -> None:
    """List a model's versions, newest first."""
    settings: Settings = ctx.obj
    with reported(), settings.client() as client:
        found = client.versions(model)
        rows = [
            (v.ref, v.parent_version or "", v.metrics.accuracy if v.metrics else "", v.created)
            for v in found
        ]
        show(settings, found, lambda: table(["version", "parent", "accuracy", "created"], rows))


@app.command("show")
def show_version(
    ctx: typer.Context, model: Annotated[str, typer.Argument(help="MODEL[:VERSION]")]
) -> None:
    """Show one version: classes, metrics, hyperparameters, features."""
    settings: Settings = ctx.obj
    model_id, number = model_ref(model)
    with reported(), settings.client() as client:
        v = client.version(model_id, number)

        def plain() -> None:
            _version_lines(v)
            table(["hyperparameter", "value"], sorted(v.hyperparameters.items()))
            importance = v.feature_importance
            rows = [
                (f.name, f.feature_type, f.arrow_type, f"{importance.get(f.name, 0):.2f}")
                for f in v.signature.features
            ]
            table(["feature", "type", "arrow type", "importance"], rows)

        show(settings, v, plain)


@app.command()
def delete(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="MODEL (all versions) or MODEL:VERSION.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a model or one version."""
    settings: Settings = ctx.obj
    model_id, version = model_ref(model)
    what = (
        f"version {version} of model {model_id}"
        if version
        else f"model {model_id} and every version"
    )
    if version == 0:
        raise typer.BadParameter(
            "versions count from 1; MODEL alone deletes every version", param_hint="MODEL"
        )
    if not yes and not _agreed(f"Delete {what}?"):
        err.print("nothing deleted (--yes deletes without asking)", markup=False)
        raise typer.Exit(Exit.ERROR)
    with reported(), settings.client() as client:
        deleted = client.delete(model_id, version)
        # The last version's delete takes the model: said, or a script would look for it.
        last = " (its last: the model is deleted too)" if version and deleted.model_deleted else ""
        show(
            settings,
            {"deleted_versions": deleted.versions, "model_deleted": deleted.model_deleted},
            lambda: err.print(f"deleted {what}{last}", markup=False),
        )


def _agreed(question: str) -> bool:
    """Ask on stderr; no answer (standard input closed or empty) is no."""
    try:
        answer = typer.confirm(question, err=True)
    except typer.Abort:  # end of input
        answer = False
    if not sys.stdin.isatty():
        err.print()  # an answer read from a pipe is not echoed to end the question's line
    return answer


@app.command()
def jobs(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Argument(help="One job to show.")] = None,
    watch: Annotated[bool, typer.Option(help="Follow the job to its end.")] = False,
    model: Annotated[str | None, typer.Option(help="Only this model's jobs.")] = None,
) -> None:
    """List training jobs, or show (and with --watch follow) one."""
    settings: Settings = ctx.obj
    if watch and not job_id:
        raise typer.BadParameter("follows one job: name it (mlops jobs JOB_ID --watch)",
                                 param_hint="--watch")  # fmt: skip
    if job_id and model:
        raise typer.BadParameter("lists a model's jobs, not with a JOB_ID", param_hint="--model")
    with reported(), settings.client() as client:
        if job_id and watch:
            _follow(client, settings, client.job(job_id), cancel_on_interrupt=False)
            return
        found: Any = client.job(job_id) if job_id else client.jobs(model)
        listed = [found] if job_id else found
        rows = [
            (j.job_id, j.state, j.kind, j.model_id, f"{j.progress.fraction:.0%}", j.error_message)
            for j in listed
        ]
        show(
            settings, found, lambda: table(["job", "state", "kind", "model", "done", "error"], rows)
        )


@app.command()
def cancel(ctx: typer.Context, job_id: str) -> None:
    """Cancel a queued or running job."""
    settings: Settings = ctx.obj
    with reported(), settings.client() as client:
        job = client.cancel(job_id)
        show(settings, job, lambda: err.print(f"cancelled job {job.job_id}", markup=False))


def resources_of(cpus: float | None, memory_mb: int | None) -> Resources | None:
    """Return the job's resource requests, or None to take the service's defaults."""
    if cpus is None and memory_mb is None:
        return None
    return Resources(cpus=cpus, memory_mb=memory_mb)


def run() -> None:
    """The `mlops` command: run it, then end the process without the interpreter's teardown.

    A finished command's teardown ran the native libraries' exit code while their threads
    (gRPC's, Arrow's) still ran; once in a while that aborted it with "terminate called
    without an active exception" (status -6) after its work and its words were done.
    """
    try:
        app()
    except SystemExit as done:
        status = done.code
    else:
        status = 0
    if isinstance(status, str):
        print(status, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone, a stream closed
            stream.flush()
    os._exit(status or 0)


if __name__ == "__main__":
    run()
