"""The one exception type users see.

Anything the user can fix (a missing file, a bad config key, a corrupt mesh, images of different
sizes) is raised as :class:`UserError` with a one-line message naming the thing. The CLI prints it
as ``error: <message>`` and exits with status 2 instead of showing a traceback from a library.
"""


class UserError(Exception):
    """A problem with the user's input, explained in one line."""
