"""Profiles: disjoint seeds, unique job ids, the CLI's profile list in sync."""

from __future__ import annotations

import pytest

from rlbench.curves.cli import PROFILE_HELP
from rlbench.curves.profiles import PROFILES, Entry, Profile, get_profile, score_range


def test_profiles_cli_help_matches_profiles() -> None:
    assert PROFILE_HELP == {name: p.description for name, p in PROFILES.items()}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profiles_jobs_are_unique_and_seeds_disjoint(name: str) -> None:
    profile = get_profile(name)
    ids = [j.id for j in profile.jobs() + profile.reference_jobs()]
    assert len(ids) == len(set(ids))
    assert not set(profile.seeds) & set(profile.reference_seeds)
    # A/A calibration splits the reference pool into a nightly-sized set and >= 2 others.
    assert len(profile.reference_seeds) >= len(profile.seeds) + 2


def test_profiles_full_meets_the_nightly_server_spec() -> None:
    full = get_profile("full")
    assert len(full.seeds) >= 5
    budgets = {e.name: dict(e.changes)["total_steps"] for e in full.entries}
    assert budgets["sac/dmc:cartpole-swingup"] == budgets["dqn/CartPole-v1"] == 100_000
    assert any(dict(e.changes).get("actors", 0) >= 1 for e in full.entries)


def test_profiles_quick_covers_every_trainer_kind() -> None:
    quick = get_profile("quick")
    assert {e.algo for e in quick.entries} >= {"dqn", "iqn", "sac"}
    assert any(dict(e.changes).get("actors", 0) >= 1 for e in quick.entries)
    assert all(p.fault == "target-not-updated" for p in quick.probes)


def test_profiles_overlapping_seeds_rejected() -> None:
    with pytest.raises(ValueError, match="overlap"):
        Profile("x", (Entry("dqn", "CartPole-v1"),), seeds=(0, 1), reference_seeds=(1, 2, 3))


def test_profiles_unknown_names_rejected() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("nope")
    with pytest.raises(ValueError, match="no score range"):
        score_range("Pendulum-v1")
    assert score_range("dmc:walker-walk") == (0.0, 1000.0)
