"""KServe's inference routes, recognised by path: which requests are scoring requests, and for which model.

Used where a request is answered before KServe routes it (the body limit, another model's name), so that
lead_scoring_requests_total counts exactly the scoring requests: a POST to `/v1/models/<name>:predict` or to
`/v2/models/<name>[/versions/<v>]/infer`. A PUT there, a POST to a metadata or unknown route, and `:explain` (closed:
serving/repository.py) are not.
"""

from __future__ import annotations

import re

_INFERENCE = re.compile(
    r"/v1/models/(?P<v1>[^/]+):predict|/v2/models/(?P<v2>[^/]+)(?:/versions/[^/]+)?/infer"
)


def inference_model(method: str, path: str) -> str | None:
    """The model a scoring request names (`path` as the server decoded it), or None when it is not one."""
    if method != "POST":
        return None
    match = _INFERENCE.fullmatch(path)
    return None if match is None else match["v1"] or match["v2"]
