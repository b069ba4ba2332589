"""Evaluation seeds: the documented HMAC derivation, deterministic and well spread."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gymrpc_server.scores import derive_seed

SECRET = bytes(range(32))


def test_seed_is_the_documented_hmac() -> None:
    # The module's docstring, written out independently.
    message = b"gymrpc/evaluation-seed/v1\x00" + b"gymrpc/Turbofan-v0" + (7).to_bytes(8, "big")
    expected = int.from_bytes(hmac.new(SECRET, message, hashlib.sha256).digest()[:8], "big")
    assert derive_seed(SECRET, "gymrpc/Turbofan-v0", 7) == expected
    assert derive_seed(SECRET, "gymrpc/Turbofan-v0", 7) == expected  # deterministic


def test_seeds_differ_by_k_env_and_secret_and_fit_uint64() -> None:
    seeds = {derive_seed(SECRET, env_id, k) for env_id in ("A-v0", "B-v0") for k in range(500)}
    assert len(seeds) == 1000
    assert all(0 <= seed < 2**64 for seed in seeds)
    # Large seeds occur: the whole uint64 range is used, not 32 bits.
    assert max(seeds) >= 2**63
    assert derive_seed(bytes(32), "A-v0", 0) != derive_seed(SECRET, "A-v0", 0)
    # k is not glued to env_id as text, where ("A-v1", 1) and ("A-v", 11) would collide.
    assert derive_seed(SECRET, "A-v1", 1) != derive_seed(SECRET, "A-v", 11)


@pytest.mark.parametrize("k", [-1, 2**63])
def test_k_out_of_range_is_refused(k: int) -> None:
    with pytest.raises(ValueError, match=rf"k is {k}; expected 0 <= k < 2\*\*63"):
        derive_seed(SECRET, "A-v0", k)
