"""One exception type for problems the user can fix (bad path, corrupt file, wrong checkpoint).

CLIs catch it and print a single `error: ...` line instead of a traceback."""
import functools
import sys


class UserError(Exception):
    """A problem with the user's input: the message names the file and what is wrong."""


def cli_entry(main):
    """Wrap a CLI `main(argv)` so a UserError becomes one clear line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapper
