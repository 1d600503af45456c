"""A Provider deleted while a run uses it: the run stops like a cancel, then fails naming it.

Pure. The shards carry the Provider as resolved at planning, so a worker could go on calling an
endpoint (at a price) its admin has withdrawn; deleting the Provider is how the admin says stop. The
run controller's index of Providers says which exist; a name it lacks is confirmed with one read
before the run fails (the index may lag behind a Provider created just before the run).
Its unfinished items fail (they were not done, and a retry cannot help without the Provider), with
condition reason ProviderDeleted and one Warning Event.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

from oxygen.api.run import TERMINAL_PHASES, Run, RunStatus
from oxygen.controllers.run import preflight
from oxygen.controllers.run.types import RunFailure

REASON = "ProviderDeleted"


def used(run: Run) -> list[str]:
    """The Providers a column or ingestion run names (a workflow's steps are not read per pass)."""
    return preflight.provider_names(preflight.uses(run, None))


def suspects(run: Run, status: RunStatus, resolved: bool, known: Container[str]) -> list[str]:
    """The Providers the run uses that the index lacks. Only a run past resolving them may lose one
    (before, planning says ProviderNotFound); a cancel or a finished run is left alone."""
    if run.spec.cancel or status.phase in TERMINAL_PHASES or not resolved:
        return []
    return [name for name in used(run) if name not in known]


def decide(gone: Sequence[str]) -> RunFailure | None:
    """The failure for the Providers confirmed gone, if any."""
    if not gone:
        return None
    names = ", ".join(f'"{name}"' for name in gone)
    return RunFailure(
        REASON,
        f"{preflight.PROVIDERS} {names} was deleted while the run used it; its unfinished items failed",
    )


def item_error(gone: Sequence[str]) -> str:
    """The error of an item the deletion left unfinished."""
    return f"provider {', '.join(gone)} was deleted"
