"""`oxygen workflows …`: call a Workflow, and inspect, debug and cancel its runs (Runs of kind workflow).

A workflow run's items are its steps, one per step, in order; each step's item carries its `step` name,
its `provider`, and the inputs it was given once its mapping was resolved.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from oxygen.cli import control
from oxygen.cli.command import Session, cluster_command
from oxygen.cli.create import create_resource
from oxygen.cli.errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CliError, NotFound
from oxygen.cli.items import item_pages
from oxygen.cli.output import print_json, print_listing, render_table, truncate
from oxygen.cli.resources import Resources
from oxygen.cli.runview import print_run, print_runs
from oxygen.cli.shapes import run_shape
from oxygen.controllers.workflow.apply import record_created
from oxygen.controllers.workflow.runs import run_manifest
from oxygen.kube.client import Kube

KIND = "workflow"
FAILED_PHASES = ("failed", "completed")
STEP_COLUMNS = ("ID", "STEP", "PROVIDER", "STATUS", "ATTEMPTS", "CREDITS", "ERROR")
FAILURE_COLUMNS = ("RUN", "WORKFLOW", "PHASE", "STEP", "ATTEMPTS", "ERROR")

Obj = dict[str, Any]


# -- pure conversions ------------------------------------------------------------------------------


def parse_inputs(pairs: Sequence[str]) -> dict[str, Any]:
    """`k=v` pairs → inputs; a value that parses as JSON (42, true, {"a": 1}) is that JSON, else a string.

    Raises CliError (usage) for a pair without `=` or with an empty key; a repeated key keeps the last.
    """
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--input {pair!r}: expected key=value", code=EXIT_USAGE)
        try:
            inputs[key.strip()] = json.loads(text)
        except ValueError:
            inputs[key.strip()] = text
    return inputs


def workflow_of(run: Mapping[str, Any]) -> str | None:
    ref = (run.get("spec") or {}).get("workflowRef") or {}
    return ref.get("name")


def workflow_run_shape(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run shape plus the workflow and the run's inputs."""
    return {**run_shape(run), "workflow": workflow_of(run), "inputs": (run.get("spec") or {}).get("inputs")}


def step_order(item: Mapping[str, Any]) -> tuple[int, str]:
    """Steps in their declared order (ids are the step indexes), whatever round holds them."""
    ident = str(item.get("id"))
    return (int(ident), ident) if ident.isdigit() else (sys.maxsize, ident)


def failed_step(item: Mapping[str, Any]) -> dict[str, Any]:
    """What `workflows failures` says of a failed step, from its item shape."""
    return {
        "id": item["id"],
        "step": item.get("step"),
        "provider": item.get("provider"),
        "error": item["error"],
        "attempt_count": item["attempt_count"],
        "error_class": item.get("error_class"),
        "finished_at": item.get("finished_at"),
    }


def failure_shape(run: Mapping[str, Any], failed: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        **workflow_run_shape(run),
        "failed_steps": [failed_step(i) for i in sorted(failed, key=step_order)],
    }


def is_workflow_run(run: Mapping[str, Any], workflow: str | None = None) -> bool:
    return control.run_kind(dict(run)) == KIND and (workflow is None or workflow_of(run) == workflow)


# -- commands --------------------------------------------------------------------------------------


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = groups.add_parser("workflows", parents=[common], help="call workflows and inspect their runs")
    sub = group.add_subparsers(dest="command", metavar="<command>", required=True)

    call = sub.add_parser(
        "call",
        parents=[common],
        help="start a run of a workflow (trigger user)",
        description="Creates a Run of kind workflow with the workflow's inputs overlaid by --input. "
        "With --wait, exit code 0 when the run succeeded, 1 when it ended otherwise.",
    )
    call.add_argument("workflow", help="the Workflow's name")
    call.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input (repeatable); VALUE is JSON when it parses as JSON, else a string",
    )
    call.add_argument("--wait", action="store_true", help="block until the run finished")
    call.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits (default 300)")
    call.set_defaults(handler=cluster_command(call_command))

    runs = sub.add_parser("runs", parents=[common], help="runs of a workflow (of every workflow without it)")
    runs.add_argument("--workflow", help="only runs of this Workflow (spec.workflowRef.name)")
    runs.set_defaults(handler=cluster_command(runs_command))

    run = sub.add_parser("run", parents=[common], help="one workflow run with its steps")
    run.add_argument("run", help="the run's name or id (uid)")
    run.set_defaults(handler=cluster_command(run_command))

    failures = sub.add_parser(
        "failures", parents=[common], help="failed workflow runs and their failed steps"
    )
    failures.add_argument("--workflow", help="only runs of this Workflow")
    failures.set_defaults(handler=cluster_command(failures_command))

    control.add_commands(sub, common, ("cancel",), kind=KIND, shape=workflow_run_shape)


def call_command(args: argparse.Namespace, session: Session) -> int:
    inputs = parse_inputs(args.input)
    namespace = session.target.namespace
    workflow = session.api.get("workflows", namespace, args.workflow)
    if workflow is None:
        raise NotFound(f'workflow "{args.workflow}" not found in namespace "{namespace}"')
    try:
        manifest = run_manifest(workflow, "user", inputs)
    except ValidationError as err:
        raise CliError(f'workflow "{args.workflow}" is not valid: {err.errors()[0]["msg"]}') from None
    run = create_resource(session.api, manifest)
    record_created(
        Kube(session.api.api_client),
        namespace,
        args.workflow,
        {run["metadata"]["name"]: run["metadata"]["uid"]},
    )
    if args.wait:
        run = control.wait_finished(session.api, run, args.timeout)
    print_run(run, session.json, workflow_run_shape)
    if args.wait and run_shape(run)["status"] != "succeeded":
        return EXIT_ERROR
    return EXIT_OK


def runs_command(args: argparse.Namespace, session: Session) -> int:
    runs = [
        r for r in session.api.iter_objects("runs", session.api.scope()) if is_workflow_run(r, args.workflow)
    ]
    runs.sort(key=lambda r: (r["metadata"].get("creationTimestamp") or "", r["metadata"]["name"]))
    print_runs(runs, session.json, session.target.all_namespaces, workflow_run_shape)
    return EXIT_OK


def steps_of(api: Resources, run: Obj, status: str | None = None) -> list[dict[str, Any]]:
    """The run's steps (a handful: one item each), in declared order."""
    return sorted((i for page in item_pages(api, run, status=status) for i in page), key=step_order)


def run_command(args: argparse.Namespace, session: Session) -> int:
    run = control.find_run_of_kind(session.api, args.run, KIND)
    steps = steps_of(session.api, run)
    if session.json:
        print_json({**workflow_run_shape(run), "steps": steps})
        return EXIT_OK
    print_run(run, False)
    rows = [
        (s["id"], s.get("step"), s["provider"], s["status"], s["attempt_count"], s["credits_used"],
         truncate(s["error"]))
        for s in steps
    ]  # fmt: skip
    if rows:
        sys.stdout.write("\n" + render_table(STEP_COLUMNS, rows))
    return EXIT_OK


def failures_command(args: argparse.Namespace, session: Session) -> int:
    found = [
        failure_shape(run, steps_of(session.api, run, "failed"))
        for run in session.api.iter_objects("runs", session.api.scope())
        if is_workflow_run(run, args.workflow) and run_shape(run)["status"] in FAILED_PHASES
    ]
    found.sort(key=lambda f: (f["created_at"] or "", f["name"]))
    print_listing(found, session.json, "failed workflow runs", FAILURE_COLUMNS, failure_rows)
    return EXIT_OK


def failure_rows(found: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """One row per failed step (or one for the run when no step failed)."""
    rows: list[tuple[Any, ...]] = []
    for f in found:
        base = (f["name"], f["workflow"], f["status"])
        if not f["failed_steps"]:
            rows.append((*base, None, None, truncate(f["message"])))
        rows.extend((*base, s["step"], s["attempt_count"], truncate(s["error"])) for s in f["failed_steps"])
    return rows
