"""Evaluation accounting for any interleaving of terminated/truncated steps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlbench.evaluation import evaluate
from tests.scripted_env import ScriptedEnv

pytestmark = pytest.mark.law

CAP = 30
step = st.tuples(st.floats(-10, 10, allow_nan=False), st.booleans(), st.booleans())
episode = st.lists(step, min_size=1, max_size=CAP + 5)


@given(st.lists(episode, min_size=1, max_size=6))
def test_evaluate_accounting_for_any_mix_of_terminated_truncated(episodes) -> None:
    result = evaluate(lambda obs: 0, ScriptedEnv(episodes), len(episodes), seed=0,
                      max_episode_steps=CAP)
    exp_returns, exp_lengths, exp_completed = [], [], 0
    for script in episodes:
        # the episode ends at the first step flagged terminated OR truncated, else at the cap
        end = next((i + 1 for i, (_, te, tr) in enumerate(script) if te or tr), None)
        if end is not None and end <= CAP:
            exp_completed += 1
        length = min(end or CAP, CAP)
        exp_lengths.append(length)
        exp_returns.append(sum(r for r, *_ in script[:length]))
    assert result.completed == exp_completed
    assert result.lengths == tuple(exp_lengths)
    assert result.returns == tuple(exp_returns)
    assert result.episodes == len(episodes)
