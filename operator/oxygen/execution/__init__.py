"""Execution: Job manifests for shards, the worker inside a shard's pod, and producers."""
