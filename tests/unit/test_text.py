"""Text made safe to store (webapp.core.text): what the databases refuse is replaced,
everything else is kept as it was."""

from __future__ import annotations

import os

import pytest

from webapp.core.text import storable


@pytest.mark.parametrize(("text", "stored"), [
    ("plain words", "plain words"),
    ("naïve café 日本 😀", "naïve café 日本 😀"),
    (os.fsdecode(b"caf\xe9.txt"), "caf\ufffd.txt"),  # a Latin-1 file name
    ("lone \ud800 and \udfff", "lone \ufffd and \ufffd"),
    ("nul\x00inside", "nul\ufffdinside"),
    ("tab\tand\nnewline", "tab\tand\nnewline"),
    ("", ""),
])
def test_storable_replaces_only_what_cannot_be_stored(text: str, stored: str) -> None:
    assert storable(text) == stored
    assert len(storable(text)) == len(text)  # a limit checked before still holds
    storable(text).encode("utf-8")  # strict: would raise on a surrogate
