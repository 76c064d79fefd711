"""URIs as the job may show them: without what can be a secret.

A presigned S3 URL carries its signature in the query string (`?X-Amz-Signature=…`), an Azure SAS URL its token
(`?sv=…&sig=…`), and any URL may carry `user:password@`. Logs, stderr and `_manifest.json` outlive the run and are read
by people who hold no such secret: every URI the job prints or stores goes through `redact_uri`, and every message it
prints through `redact_text` (a message may quote a URI it got from a library).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "REDACTED"
# A URI inside free text: scheme://, then anything up to a space, a quote or an angle bracket, not ending in the
# punctuation that follows a URI in a sentence ("… from https://host/x?sig=…: not found").
_URI_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)\]]")


def redact_uri(uri: str) -> str:
    """`uri` with its userinfo and its query string replaced by REDACTED; a local path is returned as it is."""
    if "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:  # unparsable (an unclosed "[" in the host): show nothing after the scheme
        return f"{uri.split('://', 1)[0]}://{REDACTED}"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def strip_query(uri: str) -> str:
    """`uri` without its query string (a base to append a key to), userinfo redacted."""
    if "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        return redact_uri(uri)
    return redact_uri(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))


def redact_text(text: str) -> str:
    """Every URI inside `text` redacted."""
    return _URI_IN_TEXT.sub(lambda match: redact_uri(match.group()), text)


def one_line(text: str) -> str:
    """Whitespace (line breaks included) collapsed: one log line, one stderr line."""
    return " ".join(text.split())
