"""The one exception type every user-caused error in rsim raises.

It lives in `formats` because that is the lowest layer: every other package may import it,
and `rsim.RsimError` re-exports it.
"""


class RsimError(ValueError):
    """A problem the user can fix: the message names the file, layer, key or argument and what
    would be valid."""
