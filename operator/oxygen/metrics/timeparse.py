"""RFC 3339 timestamps to epoch seconds: `oxygen.timefmt.epoch`, under the name web/ imports."""

from oxygen.timefmt import epoch

__all__ = ["epoch"]
