"""The package's one exception type.

Every reader and stage raises :class:`DVPError` for bad input, with a message that names the
file, the row or key, and what was expected. The CLI turns it into one line on stderr and exit
status 2; anything else escaping is a bug.
"""

__all__ = ["DVPError"]


class DVPError(ValueError):
    """Bad input or configuration, explained for the user.

    A :class:`ValueError`, so code written for plain Python errors catches it too.
    """
