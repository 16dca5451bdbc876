"""The actor/learner's block claims cannot deadlock: a block is never worth more scheduled
updates than the learner may fall behind (`max_ahead`), wherever it starts."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

from hypothesis import given
from hypothesis import strategies as st

from rlbench.config import DQNConfig
from rlbench.trainers.actor_learner import ACTOR_BLOCK, actor_block, updates_due

pytestmark = pytest.mark.law


@given(tf=st.integers(1, 64), gs=st.integers(1, 8), publish=st.integers(1, 50),
       starts=st.integers(1, 500), seen=st.integers(0, 5_000))
def test_a_block_is_within_the_learners_allowed_lag(tf, gs, publish, starts, seen) -> None:
    config = DQNConfig(train_frequency=tf, gradient_steps=gs, publish_interval=publish,
                       learning_starts=starts)
    max_ahead = max(publish, gs)  # what an Actor uses
    block = actor_block(config, max_ahead)
    assert 1 <= block <= ACTOR_BLOCK
    # The learner caught up with every written step (= `seen`): the next block is claimable.
    assert updates_due(seen + block, config) - updates_due(seen, config) <= max_ahead


@given(tf=st.integers(1, 64), gs=st.integers(1, 8), publish=st.integers(1, 50))
def test_a_block_is_the_longest_the_bounds_allow(tf, gs, publish) -> None:
    # Every block costs lock round trips; a shorter one than the bounds allow only slows
    # the actors. Below ACTOR_BLOCK a block is a whole number of train_frequency periods.
    config = DQNConfig(train_frequency=tf, gradient_steps=gs, publish_interval=publish)
    max_ahead = max(publish, gs)
    block = actor_block(config, max_ahead)
    if tf >= ACTOR_BLOCK:
        assert block == ACTOR_BLOCK
        return
    assert block % tf == 0 and block >= tf, "a block is a positive number of update periods"
    longer = block + tf
    assert longer > ACTOR_BLOCK or longer // tf * gs > max_ahead, (
        f"block {block}: {longer} steps also fit within ACTOR_BLOCK and max_ahead updates")
