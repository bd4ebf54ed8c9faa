"""Text from users and from file names made safe to store: what neither database takes.

A file name that is not UTF-8 reaches Python as surrogate escapes (the byte \\xff becomes
U+DCFF), and a JSON body may carry a lone surrogate (\\ud800): neither can be encoded as
UTF-8, so SQLite and PostgreSQL refuse the whole statement. PostgreSQL also refuses NUL
in text. Each becomes U+FFFD, the replacement character, as a browser or `ls` shows
an undecodable byte; the rest of the text is kept as it was.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """The text with every surrogate and NUL replaced by U+FFFD; its length is kept."""
    return _UNSTORABLE.sub(REPLACEMENT, text)
