"""The `oxygen` command line."""
