"""Entity tags across the path: the gateway's gzip form of an answer has a strong tag of its
own, and the servers read it as the tag it came from.

A strong tag names one representation byte for byte, and a gzipped body is another one (RFC
9110, 8.8.3.3). nginx weakens the tag instead, which keeps If-None-Match working but makes
If-Match fail for every client that read the answer gzipped; a suffix keeps both.
A weak tag already means "equivalent", which the gzip form is: it stays as it is.
"""

GZIP_SUFFIX = "-gzip"


def gzip_form(tag: str) -> str:
    """The tag of a representation's gzip form: `"x"` becomes `"x-gzip"`, a weak tag stays."""
    if tag.startswith('"') and tag.endswith('"') and len(tag) >= 2:
        return f'{tag[:-1]}{GZIP_SUFFIX}"'
    return tag


def identity_opaque(opaque: str) -> str:
    """The opaque part of a strong tag as the server made it (without the gzip form's suffix)."""
    return opaque.removesuffix(GZIP_SUFFIX)
