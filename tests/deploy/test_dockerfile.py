"""The Dockerfile lints clean and builds what the manifests expect; runtime pins agree with the constraints.

Docker does not run here: the image is linted and read, not built.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
HADOLINT = REPO / ".venv" / "bin" / "hadolint"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"{path.name}: not an exact pin: {line}"
            found[canonical(name)] = version.strip()
    return found


def instructions() -> list[list[str]]:
    """The Dockerfile's instructions as words, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [
        line.split() for line in text.splitlines() if line.split() and not line.split()[0].startswith("#")
    ]


def stages() -> list[dict]:
    """FROM/USER/ENTRYPOINT per stage."""
    result = []
    for words in instructions():
        line = " ".join(words)
        if words[0] == "FROM":
            result.append({"from": words[1], "name": words[3] if len(words) > 3 else None, "lines": []})
        result[-1]["lines"].append(line)
    return result


def test_hadolint_passes():
    assert HADOLINT.exists(), "hadolint missing: make venv"
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stages_base_user_and_entrypoints():
    all_stages = stages()
    names = [s["name"] for s in all_stages]
    assert all(s["from"] in {"python:3.11-slim-bookworm", *names} for s in all_stages)
    assert len(all_stages) >= 3, "multi-stage: build, runtime, targets"
    text = DOCKERFILE.read_text()
    assert "USER 10001:10001" in text and "--uid 10001" in text
    last = all_stages[-1]
    assert last["name"] == "transformer", "the default target must be the transformer"
    assert 'ENTRYPOINT ["python", "-m", "transformer"]' in last["lines"]
    predictor = next(s for s in all_stages if s["name"] == "predictor")
    assert 'ENTRYPOINT ["python", "-m", "predictor.server"]' in predictor["lines"]
    install = next(
        line for line in text.replace("\\\n", " ").splitlines() if line.startswith("RUN pip install")
    )
    assert "--no-deps -r /tmp/runtime.txt" in install


def test_runtime_pins_match_constraints_and_cover_the_dependencies():
    runtime = pins(REPO / "requirements" / "runtime.txt")
    constraints = pins(REPO / "requirements" / "constraints.txt")
    mismatched = {
        n: (v, constraints.get(n)) for n, v in runtime.items() if n in constraints and constraints[n] != v
    }
    assert not mismatched
    # Only build tooling may be absent from the constraints (it is not pinned there).
    assert set(runtime) - set(constraints) <= {"setuptools", "pip", "wheel"}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name, _, version = requirement.partition("==")
        assert runtime[canonical(name)] == version.strip(), requirement
    assert runtime["xgboost-cpu"] == "2.1.4" and "xgboost" not in runtime
    assert not [n for n in runtime if n.startswith("nvidia-")], "CPU-only image"
    dev_only = {canonical(r.split("==")[0].split("[")[0]) for r in project["optional-dependencies"]["dev"]}
    assert not dev_only & set(runtime) - {"jsonschema", "httpx"}  # those two are also runtime deps of kserve


def _pattern(text: str) -> re.Pattern:
    """A .dockerignore pattern as Docker matches it: Go's filepath.Match (`*` and `?` stop at `/`) plus `**`."""
    out, i = "", 0
    while i < len(text):
        if text.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif text[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif text[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out)


def in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _pattern(line.lstrip("!").strip("/"))))
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for negated, pattern in rules:
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            included = negated
    return included


def copied_sources() -> list[str]:
    """What each `COPY <src> <dest>` takes from the build context (not `COPY --from=<stage>`)."""
    sources = []
    for words in instructions():
        if words[0] == "COPY" and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def test_every_file_the_dockerfile_copies_is_in_the_build_context():
    """`.dockerignore` is an allow-list; a COPY of a folder it leaves out fails the build ("not found"), as
    `COPY quality/` did for the default transformer target. Every tracked file under each COPY source must reach
    the context, except the trained model (the images fetch it from the storage URI) and bytecode."""
    sources = copied_sources()
    assert {
        "requirements/runtime.txt",
        "contract/",
        "transformer/",
        "predictor/",
        "batch/",
        "quality/",
    } <= set(sources)
    tracked = subprocess.run(
        ["git", "ls-files", "--", *sources], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked
    left_out = [f for f in tracked if not in_build_context(f) and not f.startswith("predictor/model/")]
    assert not left_out, f"COPY needs these, .dockerignore leaves them out: {left_out[:10]}"


def test_dockerignore_keeps_models_and_caches_out():
    assert not in_build_context("Makefile")  # allow-list: nothing enters the context unless named
    assert not in_build_context("tests/conftest.py") and not in_build_context(".venv/bin/python")
    assert not in_build_context("predictor/model/model.ubj")
    assert not in_build_context("transformer/__pycache__/app.cpython-311.pyc")
    assert not in_build_context("quality/__pycache__/report.cpython-311.pyc")
    assert in_build_context("transformer/app.py")
