"""`oxygen operator`: run the operator (kopf) against the cluster of the kubeconfig or in-cluster."""

from __future__ import annotations

import argparse
import logging
import os
import random
from pathlib import Path


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    op = groups.add_parser("operator", help="run the operator")
    scope = op.add_mutually_exclusive_group()
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", default=True, help="watch every namespace (default)"
    )
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    # SUPPRESS: `oxygen --kubeconfig X operator` (the global flag) must not be reset by this one.
    op.add_argument(
        "--kubeconfig",
        default=argparse.SUPPRESS,
        help="kubeconfig; wins over $KUBECONFIG and in-cluster credentials "
        "(default $KUBECONFIG, then in-cluster)",
    )
    op.add_argument(
        "--web-base-url",
        default=os.environ.get("OXYGEN_WEB_BASE_URL", "http://localhost:8083"),
        help="external base URL of the run pages (status.webUrl)",
    )
    op.add_argument("--log-level", default=os.environ.get("OXYGEN_LOG_LEVEL", "INFO"))
    op.add_argument(
        "--peering",
        default=os.environ.get("OXYGEN_PEERING") or None,
        help="kopf peering name for HA: replicas with the same name elect one active "
        "(needs the kopf.dev peering CRDs); without it the operator runs standalone",
    )
    op.add_argument(
        "--priority",
        type=int,
        default=int(os.environ["OXYGEN_PRIORITY"]) if os.environ.get("OXYGEN_PRIORITY") else None,
        help="peering priority (default: random); replicas need distinct ones, equal priorities all pause",
    )
    op.add_argument(
        "--peering-lifetime",
        type=int,
        default=int(os.environ.get("OXYGEN_PEERING_LIFETIME", "10")),
        help="seconds a silent active peer is trusted before a standby takes over (default 10)",
    )
    op.add_argument(
        "--item-store",
        default=os.environ.get("OXYGEN_ITEM_STORE") or None,
        help="PostgreSQL DSN of the item store (default $OXYGEN_ITEM_STORE): a column run's items and "
        "results live there, one row per item; without it they live in RunShards (etcd)",
    )
    op.add_argument(
        "--liveness", default=None, help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz"
    )
    op.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    kubeconfig = getattr(args, "kubeconfig", None)
    if kubeconfig:
        # Both clients must use it: ours reads $KUBECONFIG when it is built, kopf logs in with it.
        os.environ["KUBECONFIG"] = str(kubeconfig)
    os.environ["OXYGEN_WEB_BASE_URL"] = args.web_base_url
    os.environ["OXYGEN_PEERING_LIFETIME"] = str(args.peering_lifetime)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # kopf logs every handler invocation at INFO; ours say what matters.
    logging.getLogger("kopf").setLevel(max(logging.WARNING, logging.getLevelName(args.log_level.upper())))
    if args.item_store:
        os.environ["OXYGEN_ITEM_STORE"] = args.item_store
        if not _migrate(args.item_store):
            return 1
    import kopf

    if kubeconfig:
        from oxygen.kube.login import register_login

        register_login(Path(kubeconfig))
    # Importing a handlers module registers its handlers with kopf.
    import oxygen.controllers.creditaccount.handlers
    import oxygen.controllers.process
    import oxygen.controllers.provider.handlers
    import oxygen.controllers.run.handlers
    import oxygen.controllers.table.handlers
    import oxygen.controllers.workflow.handlers

    if args.item_store:
        import oxygen.controllers.run.store_cleanup  # noqa: F401  (a deleted Run's rows)

    # Deployment replicas share one template: a random priority keeps them distinct.
    priority = args.priority if args.priority is not None else random.randint(1, 2**31 - 1)
    # Takeovers are worth seeing in the log ("Resuming operations", "Pausing operations").
    logging.getLogger("kopf._core.engines.peering").setLevel(logging.INFO)
    kopf.run(
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=priority if args.peering else 0,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )
    return 0


def _migrate(dsn: str) -> bool:
    """The item store's schema, brought up to date before anything runs (idempotent)."""
    from oxygen.itemstore.store import ItemStore, ItemStoreError

    store = ItemStore(dsn)
    try:
        applied = store.migrate()
    except Exception as err:  # the database's own message, one line
        reason = err if isinstance(err, ItemStoreError) else f"item store: {err}"
        logging.getLogger("oxygen").error("cannot use the item store: %s", reason)
        return False
    finally:
        store.close()
    if applied:
        logging.getLogger("oxygen").info("item store schema migrated to version %d", applied[-1])
    return True
