"""API keys: who may score, under which name, at what rate.

Keys are held only as sha256 digests and compared with hmac.compare_digest against every entry (no early exit), so
neither the key nor its position leaks through timing. The keys file is a mounted Secret: it is re-read when it
changes (checked at most every `reload_seconds`), so rotation needs no restart and a removed key stops working.

Keys file (YAML):
    keys:
      - name: crm-prod                  # appears in logs, metrics and the data lake — never the key
        sha256: 9f86d0…                 # or `key: <plaintext>`
        rate_per_second: 200            # optional token bucket per key name
        burst: 400
Env API_KEYS adds keys as "name:key,name2:key2" (a bare "key" gets the name "env-<n>").

Several keys may share a name (a rotation: old and new key of one client); they share one token bucket, so entries
of one name must agree on rate_per_second and burst — a file where they differ is refused (keeping the bucket per
name is what stops a client from resetting its limit by alternating keys). A reload never leaves the service with
no keys by accident: an empty list is refused like a malformed file unless it also says `revoke_all: true`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from prometheus_client import Counter

from transformer.errors import RateLimited, Unauthorized

log = logging.getLogger(__name__)
KEYS_FILE_REJECTED = Counter(
    "lead_scoring_api_keys_file_rejected",
    "Reloads of the API keys file refused (malformed, empty, conflicting limits); "
    "the previous keys stay in force",
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass
class KeyEntry:
    name: str
    sha256: bytes
    rate_per_second: float | None = None
    burst: float | None = None


@dataclass
class TokenBucket:
    rate: float
    capacity: float
    stamp: float
    tokens: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def take(self, cost: float, now: float) -> float:
        """0.0 when allowed, else the seconds to wait for enough tokens."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class KeyFileError(ValueError):
    pass


def _limit(value: object) -> float | None:
    """A rate or burst as a finite positive float; None if it is not one (a bool, NaN, inf, 1e400 …)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def describe(exc: BaseException) -> str:
    """A keys-file problem in one line without the file's text: PyYAML's messages quote the offending source line,
    which may hold a plaintext `key:`."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"not valid YAML: {exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, yaml.YAMLError):
        return "not valid YAML"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc).splitlines()[0]


def parse_keys_file(text: str, source: str) -> list[KeyEntry]:
    data = yaml.safe_load(text) or {}
    items = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise KeyFileError(f"{source}: expected a mapping with a 'keys' list")
    if not items and data.get("revoke_all") is not True:
        raise KeyFileError(
            f"{source}: the 'keys' list is empty; to revoke every key on purpose, also set 'revoke_all: true'"
        )
    entries = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise KeyFileError(f"{source}: keys[{i}] needs a non-empty 'name'")
        name = item["name"]
        if "sha256" in item:
            hexdigest = str(item["sha256"]).lower()
            if not _HEX64.match(hexdigest):
                raise KeyFileError(f"{source}: keys[{i}] ({name}): sha256 must be 64 hex characters")
            sha = bytes.fromhex(hexdigest)
        elif isinstance(item.get("key"), str) and item["key"]:
            sha = digest(item["key"])
        else:
            raise KeyFileError(f"{source}: keys[{i}] ({name}) needs 'sha256' or 'key'")
        rate, burst = item.get("rate_per_second"), item.get("burst")
        if rate is not None and _limit(rate) is None:
            raise KeyFileError(f"{source}: keys[{i}] ({name}): rate_per_second must be a finite number > 0")
        if burst is not None and (_limit(burst) is None or burst < 1):
            raise KeyFileError(f"{source}: keys[{i}] ({name}): burst must be a finite number >= 1")
        rate = _limit(rate)
        # The default burst is two seconds' worth, but at least one request: below 1 no request could ever pass.
        default_burst = max(1.0, rate * 2) if rate else None
        entries.append(KeyEntry(name, sha, rate, _limit(burst) or default_burst))
    return entries


def check_shared_limits(entries: list[KeyEntry], source: str) -> None:
    """Entries of one name share a token bucket: they must agree on its rate and burst. One key under two names is
    refused too: the first entry would win, so the other name's limits and logs would silently not apply."""
    names_of_key: dict[bytes, str] = {}
    for entry in entries:
        other = names_of_key.setdefault(entry.sha256, entry.name)
        if other != entry.name:
            raise KeyFileError(
                f"{source}: one key is listed under two names, '{other}' and '{entry.name}' (API_KEYS counts too); "
                "a key belongs to one name"
            )
    limits: dict[str, tuple[float | None, float | None]] = {}
    for entry in entries:
        seen = limits.setdefault(entry.name, (entry.rate_per_second, entry.burst))
        if seen != (entry.rate_per_second, entry.burst):
            raise KeyFileError(
                f"{source}: keys named '{entry.name}' have different rate_per_second/burst; "
                "keys sharing a name share one rate limit, so give them the same values"
            )


def parse_env_keys(value: str) -> list[KeyEntry]:
    entries = []
    for n, part in enumerate(p.strip() for p in value.split(",")):
        if not part:
            continue
        name, sep, key = part.partition(":")
        if not sep:
            name, key = f"env-{n}", part
        entries.append(KeyEntry(name, digest(key)))
    return entries


class KeyStore:
    def __init__(
        self,
        keys_file: str | None = None,
        env_keys: str | None = None,
        reload_seconds: float = 2.0,
        clock=time.monotonic,
    ):
        self._file = Path(keys_file) if keys_file else None
        self._env_entries = parse_env_keys(env_keys or "")
        self._reload_seconds = reload_seconds
        self._clock = clock
        self._file_entries: list[KeyEntry] = []
        self._file_stamp: tuple | None = None
        self._next_check = 0.0
        self._buckets: dict[str, TokenBucket] = {}
        self._unreadable = False
        check_shared_limits(self._env_entries, "API_KEYS")
        if self._file:
            self._reload(initial=True)
        if not self._entries():
            raise KeyFileError("no API keys configured: set API_KEYS or --api_keys_file")

    def _entries(self) -> list[KeyEntry]:
        return self._env_entries + self._file_entries

    def _reload(self, initial: bool = False) -> None:
        try:
            st = os.stat(self._file)
        except OSError as exc:
            if initial:
                raise KeyFileError(f"keys file {self._file}: {exc.strerror}") from None
            if not self._unreadable:  # once per outage: the counter is what the documented alert watches
                self._unreadable = True
                KEYS_FILE_REJECTED.inc()
                log.error("keys file unreadable, keeping the previous keys", extra={"error": exc.strerror})
            return
        self._unreadable = False
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._file_stamp:
            return
        try:
            entries = parse_keys_file(self._file.read_text(encoding="utf-8"), str(self._file))
            check_shared_limits(self._env_entries + entries, str(self._file))
        # Whatever the file holds, a request is never the one to fail: a half-written file ends mid-character
        # (UnicodeDecodeError), a huge number overflows, a deep YAML nesting recurses.
        except (ValueError, yaml.YAMLError, OSError, OverflowError, RecursionError) as exc:
            problem = describe(exc)
            if initial:
                raise KeyFileError(
                    problem if problem.startswith(str(self._file)) else f"{self._file}: {problem}"
                ) from None
            if not isinstance(exc, OSError):
                self._file_stamp = stamp  # judged once per version of the file; a read error is tried again
            KEYS_FILE_REJECTED.inc()
            log.error("keys file invalid, keeping the previous keys", extra={"error": problem})
            return
        self._file_entries = entries
        self._file_stamp = stamp
        # A bucket survives a reload unless its name is gone or its limits changed.
        limits = {e.name: (e.rate_per_second, e.burst or e.rate_per_second) for e in self._entries()}
        self._buckets = {
            name: b for name, b in self._buckets.items() if limits.get(name) == (b.rate, b.capacity)
        }
        if not initial:
            if entries:
                log.info("keys file reloaded", extra={"key_names": sorted(e.name for e in entries)})
            else:
                log.warning("keys file reloaded with revoke_all: every file key is revoked")

    def maybe_reload(self) -> None:
        if self._file is None:
            return
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self._reload_seconds
            self._reload()

    def authenticate(self, presented: str | None) -> KeyEntry:
        """The entry of a valid key, else Unauthorized. The key itself never appears in a message."""
        self.maybe_reload()
        # A header value's surrounding blanks are not part of it (RFC 9110 5.5); uvicorn's parser keeps trailing ones.
        presented = presented.strip(" \t") if presented else presented
        if not presented:
            raise Unauthorized("missing API key: send it in the X-API-Key header (gRPC metadata x-api-key)")
        candidate = digest(presented)
        match = None
        for entry in self._entries():
            if hmac.compare_digest(candidate, entry.sha256) and match is None:
                match = entry
        if match is None:
            raise Unauthorized("invalid API key")
        return match

    def charge(self, entry: KeyEntry) -> None:
        """Token bucket per key name, one token per request. Every key of a name draws from the same bucket
        (their limits agree: check_shared_limits), so switching keys never refills it."""
        if entry.rate_per_second is None:
            return
        bucket = self._buckets.get(entry.name)
        if bucket is None:
            bucket = self._buckets[entry.name] = TokenBucket(
                entry.rate_per_second, entry.burst or entry.rate_per_second, stamp=self._clock()
            )
        wait = bucket.take(1.0, self._clock())
        if wait > 0:
            raise RateLimited(
                f"rate limit of {entry.rate_per_second:g} requests/s for key '{entry.name}' exceeded; "
                f"retry after {wait:.2f} s",
                retry_after_seconds=wait,
            )
