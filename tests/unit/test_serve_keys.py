"""`make serve`'s keys: the dev key plus the caller's API_KEYS pairs and keys file, as the transformer reads them;
only names are printed. (End to end: tests/integration/test_make_serve.py.)"""

from __future__ import annotations

from pathlib import Path

from hack.serve import _api_keys
from transformer.auth import KeyStore


def test_the_dev_key_and_the_callers_keys_all_authenticate_and_only_names_are_printed(tmp_path: Path):
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text("keys:\n  - name: from-file\n    key: file-secret-123\n")
    pairs, printed = _api_keys("dev-secret", "me:my-secret, ci:ci-secret", keys_file)
    store = KeyStore(str(keys_file), pairs)
    assert [
        store.authenticate(k).name for k in ("dev-secret", "my-secret", "ci-secret", "file-secret-123")
    ] == ["dev", "me", "ci", "from-file"]
    assert "API_KEYS: me, ci" in printed and f"keys file {keys_file}: from-file" in printed
    assert not any(secret in printed for secret in ("my-secret", "ci-secret", "file-secret-123"))


def test_a_keys_file_the_transformer_will_refuse_is_named_without_names(tmp_path: Path):
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text("keys: []\n")
    assert _api_keys("dev-secret", "", keys_file)[1] == f"   (also accepted: keys file {keys_file})"


def test_without_keys_of_the_caller_only_the_dev_key():
    assert _api_keys("dev-secret", "", None) == ("dev:dev-secret", "")
