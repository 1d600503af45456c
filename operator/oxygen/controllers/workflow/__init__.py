"""The Workflow controller: triggers (schedule, events, webhook) that create Runs, and their lifecycle.

- handlers.py: kopf glue only (indexes of runs, a daemon per Workflow, the webhook server's start);
- observe.py: one snapshot for a pass, and what the daemon remembers while the watch lags its writes;
- decide.py: the pure, top-down pass returning a Plan (plan.py), one module per policy:
  managed.py (which runs the workflow created: finding 8 of the tenancy issue), schedule.py (fires
  and concurrencyPolicy, with cron.py, the parser), events.py (event triggers), history.py (pruning);
- apply.py: the only caller of the API server (intent, creates, deletes, one status write, Events);
- webhook.py, webhook_guard.py: the webhook endpoint, its cache and rate limit;
- runs.py (the manifests of the runs a fire creates), views.py (run accessors), clock.py.
"""
