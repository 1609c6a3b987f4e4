"""Which characters can travel in an XML answer, shared by the form parser and the XML writer.

XML 1.0 has no way to carry most C0 control characters, U+FFFE, U+FFFF or a lone surrogate, even as
character references; a document holding one is not XML, and boto3 fails on every answer that
echoes it. So the parser refuses such a character in any string a request gives (as AWS answers
``InvalidParameterValue``), and the writer replaces any that still reaches it (a message quoting a
header, a value stored by an older version) with U+FFFD, so that whatever we answer parses.
"""

from __future__ import annotations

import re

# The complement of XML 1.0's Char production.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
REPLACEMENT = "\ufffd"


def first_invalid(text: str) -> str | None:
    """The first character of ``text`` that XML cannot carry, or None."""
    match = _NOT_XML.search(text)
    return None if match is None else match.group()


def xml_safe(text: str) -> str:
    """``text`` with every character XML cannot carry replaced by U+FFFD."""
    return _NOT_XML.sub(REPLACEMENT, text)


def describe(char: str) -> str:
    """A character as a message can name it without containing it: ``U+0001``."""
    return f"U+{ord(char):04X}"
