"""Tier mapping, API keys (hashed, constant-time, reloadable) and the per-key token bucket."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from contract.tiers import TierMap
from transformer.auth import KeyFileError, KeyStore
from transformer.errors import RateLimited, Unauthorized


def test_scores_map_to_buckets_and_tiers_at_the_card_thresholds():
    tiers = TierMap([0.1, 0.2, 0.3, 0.4])
    scores = np.array([0.05, 0.1, 0.15, 0.2, 0.35, 0.4, 0.99], np.float32)
    assert tiers.buckets(scores).tolist() == [1, 2, 2, 3, 4, 5, 5]
    assert tiers.tiers(tiers.buckets(scores)).tolist() == ["E", "D", "D", "C", "B", "A", "A"]
    with pytest.raises(ValueError):
        TierMap([0.3, 0.2, 0.1, 0.05])


def test_a_score_exactly_on_a_cut_point_belongs_to_the_higher_bucket():
    """The rule contract/tiers.py states. Cut points like 0.1 cannot be hit exactly by a float32
    score (float32(0.1) > 0.1), so the test above passes whichever side a tie goes to: these cut points are exact
    in float32, and so are the scores on them and one float32 step below them."""
    cuts = [0.125, 0.25, 0.5, 0.75]
    tiers = TierMap(cuts)
    on = np.array(cuts, dtype=np.float32)
    below = np.nextafter(on, np.float32(0))
    assert tiers.buckets(on).tolist() == [2, 3, 4, 5]
    assert tiers.buckets(below).tolist() == [1, 2, 3, 4]
    assert tiers.tiers(tiers.buckets(on)).tolist() == ["D", "C", "B", "A"]


class Clock:
    def __init__(self):
        self.now = 1e9  # far from time.monotonic(): a bucket must use the store's clock, not the system's

    def __call__(self):
        return self.now


def test_env_keys_name_the_caller_and_never_echo_the_key():
    store = KeyStore(env_keys="crm:s3cret-one, s3cret-two")
    assert store.authenticate("s3cret-one").name == "crm"
    assert store.authenticate("s3cret-two").name == "env-1"
    with pytest.raises(Unauthorized) as error:
        store.authenticate("s3cret-wrong")
    assert "s3cret" not in str(error.value)
    with pytest.raises(Unauthorized, match="missing API key"):
        store.authenticate(None)


def test_keys_file_with_hashes_reloads_and_removed_keys_stop_working(tmp_path):
    clock = Clock()
    path = tmp_path / "keys.yaml"
    digest = hashlib.sha256(b"alpha-key").hexdigest()
    path.write_text(f"keys:\n  - name: alpha\n    sha256: {digest}\n  - name: beta\n    key: beta-key\n")
    store = KeyStore(str(path), reload_seconds=2, clock=clock)
    assert store.authenticate("alpha-key").name == "alpha"
    path.write_text("keys:\n  - name: gamma\n    key: gamma-key\n")
    clock.now += 2.5
    assert store.authenticate("gamma-key").name == "gamma"
    with pytest.raises(Unauthorized):
        store.authenticate("alpha-key")
    path.write_text("not: [valid")  # a broken rotation keeps the last good keys
    clock.now += 2.5
    assert store.authenticate("gamma-key").name == "gamma"


def test_bad_keys_files_fail_at_start(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text("keys:\n  - name: x\n    sha256: nothex\n")
    with pytest.raises(KeyFileError, match="64 hex"):
        KeyStore(str(path))
    with pytest.raises(KeyFileError, match="no API keys"):
        KeyStore(env_keys="")


def test_token_bucket_per_key_name(tmp_path):
    clock = Clock()
    path = tmp_path / "keys.yaml"
    path.write_text(
        "keys:\n  - name: slow\n    key: slow-key\n    rate_per_second: 2\n    burst: 2\n"
        "  - name: free\n    key: free-key\n"
    )
    store = KeyStore(str(path), clock=clock)
    slow = store.authenticate("slow-key")
    store.charge(slow)
    store.charge(slow)
    with pytest.raises(RateLimited) as error:
        store.charge(slow)
    assert 0 < error.value.retry_after_seconds <= 0.5 and error.value.http_status == 429
    clock.now += 0.5
    store.charge(slow)
    free = store.authenticate("free-key")
    for _ in range(1000):
        store.charge(free)


def test_keys_of_one_name_share_one_bucket_and_cannot_reset_it_by_alternating(tmp_path):
    clock = Clock()
    path = tmp_path / "keys.yaml"
    path.write_text(
        "keys:\n  - name: crm\n    key: k1\n    rate_per_second: 1\n    burst: 1\n"
        "  - name: crm\n    key: k2\n    rate_per_second: 1\n    burst: 1\n"
    )
    store = KeyStore(str(path), clock=clock)
    store.charge(store.authenticate("k1"))
    with pytest.raises(RateLimited):
        store.charge(store.authenticate("k2"))
    with pytest.raises(RateLimited):
        store.charge(store.authenticate("k1"))


def test_a_rotation_keeps_each_callers_bucket_unless_its_limits_change(tmp_path):
    """A Secret rotation (new key, same name and limits) must not refill everyone's rate limit; a changed limit
    starts a fresh bucket at the new size."""
    clock = Clock()
    path = tmp_path / "keys.yaml"
    limited = "    rate_per_second: 0.01\n    burst: 2\n"
    path.write_text("keys:\n  - name: crm\n    key: old-key\n" + limited)
    store = KeyStore(str(path), reload_seconds=1, clock=clock)
    store.charge(store.authenticate("old-key"))
    store.charge(store.authenticate("old-key"))
    path.write_text("keys:\n  - name: crm\n    key: new-key\n" + limited)
    clock.now += 1.5  # 0.015 tokens refilled: still empty
    with pytest.raises(RateLimited):
        store.charge(store.authenticate("new-key"))
    path.write_text("keys:\n  - name: crm\n    key: new-key\n    rate_per_second: 0.01\n    burst: 3\n")
    clock.now += 1.5
    entry = store.authenticate("new-key")
    for _ in range(3):
        store.charge(entry)
    with pytest.raises(RateLimited):
        store.charge(entry)


def test_keys_of_one_name_with_different_limits_are_refused_at_start_and_on_reload(tmp_path):
    clock = Clock()
    path = tmp_path / "keys.yaml"
    conflicting = (
        "keys:\n  - name: crm\n    key: k1\n    rate_per_second: 1\n"
        "  - name: crm\n    key: k2\n    rate_per_second: 2\n"
    )
    path.write_text(conflicting)
    with pytest.raises(KeyFileError, match="keys named 'crm' have different"):
        KeyStore(str(path))
    path.write_text("keys:\n  - name: crm\n    key: k1\n    rate_per_second: 1\n    burst: 1\n")
    store = KeyStore(str(path), reload_seconds=2, clock=clock)
    store.charge(store.authenticate("k1"))
    path.write_text(conflicting)
    clock.now += 0.5
    store.maybe_reload()
    clock.now += (
        2.5  # the reload is refused: k2 unknown, k1's bucket untouched (0.5 + 2.5 s of refill, burst 1)
    )
    with pytest.raises(Unauthorized):
        store.authenticate("k2")
    store.charge(store.authenticate("k1"))
    with pytest.raises(RateLimited):
        store.charge(store.authenticate("k1"))


def test_an_empty_key_list_is_refused_unless_revoke_all(tmp_path):
    clock = Clock()
    path = tmp_path / "keys.yaml"
    path.write_text("keys:\n  - name: crm\n    key: k1\n")
    store = KeyStore(str(path), reload_seconds=2, clock=clock)
    path.write_text("keys: []\n")
    clock.now += 2.5
    assert store.authenticate("k1").name == "crm"  # a rotation that wrote nothing locks nobody out
    path.write_text("keys: []\nrevoke_all: true\n")
    clock.now += 2.5
    with pytest.raises(Unauthorized):
        store.authenticate("k1")
    with pytest.raises(KeyFileError, match="no API keys"):
        KeyStore(str(path))


def test_a_slow_rate_without_a_burst_still_lets_one_request_through(tmp_path):
    """The default burst was rate × 2: at 0.2/s that is 0.4 tokens, and no request (cost 1) ever passed."""
    clock = Clock()
    path = tmp_path / "keys.yaml"
    path.write_text("keys:\n  - name: slow\n    key: slow-key\n    rate_per_second: 0.2\n")
    store = KeyStore(str(path), clock=clock)
    slow = store.authenticate("slow-key")
    store.charge(slow)
    with pytest.raises(RateLimited) as error:
        store.charge(slow)
    assert error.value.retry_after_seconds == pytest.approx(5.0)
    clock.now += 5.0
    store.charge(slow)


@pytest.mark.parametrize(
    ("limits", "rule"),
    [
        ("rate_per_second: .nan", "rate_per_second must be a finite number > 0"),
        ("rate_per_second: .inf", "rate_per_second must be a finite number > 0"),
        ("rate_per_second: true", "rate_per_second must be a finite number > 0"),
        ("rate_per_second: 1" + "0" * 400, "rate_per_second must be a finite number > 0"),
        ("rate_per_second: 1\n    burst: .nan", "burst must be a finite number >= 1"),
        ("rate_per_second: 1\n    burst: 0.5", "burst must be a finite number >= 1"),
    ],
)
def test_limits_that_are_not_finite_positive_numbers_are_refused(tmp_path, limits, rule):
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys:\n  - name: x\n    key: x-key\n    {limits}\n")
    with pytest.raises(KeyFileError, match=rule):
        KeyStore(str(path))


def test_whatever_a_reloaded_file_holds_keeps_the_previous_keys_and_is_counted(tmp_path):
    """A file cut off mid-character, a huge number or a deep nesting raised out of authenticate(): a 500 for the
    request that happened to trigger the reload, uncounted, again at every reload."""
    from transformer.auth import KEYS_FILE_REJECTED

    clock = Clock()
    path = tmp_path / "keys.yaml"
    path.write_text("keys:\n  - name: crm\n    key: crm-key\n")
    store = KeyStore(str(path), reload_seconds=2, clock=clock)
    for content in (
        "keys:\n  - name: m\xc3".encode("latin-1")[:-1] + b"\xc3",  # a partial write ends mid-character
        "keys:\n  - name: m\u00fcller\n    key: k\n".encode("latin-1"),
        b"keys:\n  - name: big\n    key: big-key\n    rate_per_second: 1" + b"0" * 400 + b"\n",
        b"keys: " + b"[" * 2000 + b"]" * 2000 + b"\n",
    ):
        before = KEYS_FILE_REJECTED._value.get()
        path.write_bytes(content)
        clock.now += 2.5
        assert store.authenticate("crm-key").name == "crm", content[:40]
        assert KEYS_FILE_REJECTED._value.get() == before + 1, content[:40]
    path.unlink()  # a deleted file: counted once, the previous keys stay
    before = KEYS_FILE_REJECTED._value.get()
    for _ in range(3):
        clock.now += 2.5
        assert store.authenticate("crm-key").name == "crm"
    assert KEYS_FILE_REJECTED._value.get() == before + 1


def test_a_start_refused_for_a_yaml_error_does_not_quote_the_file(tmp_path):
    """PyYAML's message quotes the offending line, which may hold a plaintext key, into the start error."""
    path = tmp_path / "keys.yaml"
    path.write_text('keys:\n  - name: dev\n    key: "ls_Zq9\\Xsecret"\n')
    with pytest.raises(KeyFileError) as error:
        KeyStore(str(path))
    assert "secret" not in str(error.value) and "line 3" in str(error.value)


def test_one_key_under_two_names_is_refused_and_blanks_around_a_key_are_not_part_of_it(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text("keys:\n  - name: crm\n    key: shared-key\n")
    with pytest.raises(KeyFileError, match="one key is listed under two names, 'ops' and 'crm'") as error:
        KeyStore(str(path), env_keys="ops:shared-key")
    assert "shared-key" not in str(error.value)
    store = KeyStore(env_keys="crm:crm-key")
    assert store.authenticate("crm-key \t").name == "crm" and store.authenticate(" crm-key").name == "crm"
