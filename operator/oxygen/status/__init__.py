"""Pure aggregation: items → shard summary → run status. No I/O."""
