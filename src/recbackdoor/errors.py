"""One exception type for every problem the user can fix.

The CLI catches :class:`UserError` and prints its message as a single line, so
every message must name the file, row and field it is about.
"""


class UserError(Exception):
    """Bad input, missing data or an invalid configuration (not a bug)."""
