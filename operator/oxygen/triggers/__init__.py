"""Workflow triggers: schedule, webhook and event fires that create workflow Runs, and the
Workflow's run lifecycle (concurrency policy, status, history limit)."""
