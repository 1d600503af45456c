"""Pure planning: items from their source, items → shards, deterministic child names. No I/O."""
