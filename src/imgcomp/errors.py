"""The one exception a user can cause and fix: printed as a single line, exit code 2."""


class UserError(Exception):
    """A problem with the user's data, params or environment; the message says what to fix."""
