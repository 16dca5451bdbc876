"""The five probe environments of Andy Jones, "Debugging RL without the agonizing pain".

Each isolates one piece of a value-learning agent, and each has values known exactly, so a
learning test checks numbers rather than "it ran". Every probe exists in two variants:
``probe:<n>`` with ``Discrete`` actions and ``probe:<n>-continuous`` with a ``Box(-1, 1, (1,))``
action. Observations are always ``Box(-1, 1, (1,), float32)``. The optimal values below
assume a discount ``gamma``; one-step episodes do not depend on it.

A sixth probe, ``probe:timelimit`` (and ``probe:timelimit-continuous``), is rlbench's own: it
separates bootstrapping through a time-limit truncation from stopping at it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

_OBS_SPACE = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)


class _Probe(gym.Env):
    """Shared plumbing: spaces, seeding, one-number observations."""

    summary: ClassVar[str] = ""
    n_discrete_actions: ClassVar[int] = 1

    def __init__(self, continuous: bool = False) -> None:
        self.continuous = continuous
        self.observation_space = _OBS_SPACE
        if continuous:
            self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        else:
            self.action_space = gym.spaces.Discrete(self.n_discrete_actions)
        self._obs = 0.0
        self._t = 0

    def _o(self, value: float) -> np.ndarray:
        return np.array([value], dtype=np.float32)

    def _action_value(self, action: Any) -> float:
        """Continuous: the clipped scalar. Discrete: the action index."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != 1 or not np.isfinite(a[0]):
            raise ValueError(f"probe expects one finite action, got {action!r}")
        if self.continuous:
            return float(np.clip(a[0], -1.0, 1.0))
        if not self.action_space.contains(int(a[0])):
            raise ValueError(f"action {action!r} outside {self.action_space}")
        return float(int(a[0]))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._obs = self._first_obs()
        return self._o(self._obs), {}

    def _first_obs(self) -> float:
        return 0.0


class ConstantReward(_Probe):
    """Probe 1 — one action, observation 0, one step, reward +1.

    Tests that the value network can fit a constant at all.
    Optimal values: V(0) = 1; Q(0, a) = 1 for every action a.
    """

    summary = "constant +1 reward, one step: V = 1"

    def step(self, action):
        self._action_value(action)
        return self._o(0.0), 1.0, True, False, {}


class ObsDependentReward(_Probe):
    """Probe 2 — one action, observation ±1 at random, one step, reward = observation.

    Tests that the value depends on the observation (backprop through the input).
    Optimal values: V(+1) = +1, V(-1) = -1; Q(o, a) = o for every action a.
    """

    summary = "reward = random ±1 observation, one step: V(o) = o"

    def _first_obs(self) -> float:
        return float(self.np_random.choice([-1.0, 1.0]))

    def step(self, action):
        self._action_value(action)
        return self._o(0.0), self._obs, True, False, {}


class TwoStepDiscount(_Probe):
    """Probe 3 — one action, observation 0 then 1, two steps, reward 0 then +1.

    Tests discounting and bootstrapping across a non-terminal step.
    Optimal values: V(0) = gamma, V(1) = 1; Q(o, a) = V(o) for every action a.
    """

    summary = "obs 0 then 1, reward 0 then 1: V(0) = gamma, V(1) = 1"

    def step(self, action):
        self._action_value(action)
        if self._t == 0:
            self._t, self._obs = 1, 1.0
            return self._o(1.0), 0.0, False, False, {}
        return self._o(0.0), 1.0, True, False, {}


class ActionDependentReward(_Probe):
    """Probe 4 — observation 0, one step, reward depends on the action only.

    Tests that the policy picks the better action (the argmax / actor gradient).
    Discrete (2 actions): reward -1 for action 0, +1 for action 1;
      Q(0, 0) = -1, Q(0, 1) = +1, greedy action 1.
    Continuous: reward = a (clipped to [-1, 1]); Q(0, a) = a, greedy action +1.
    """

    summary = "reward depends on the action: Q(a=1) = +1 (discrete) / Q(a) = a"
    n_discrete_actions = 2

    def step(self, action):
        a = self._action_value(action)
        reward = a if self.continuous else (1.0 if a == 1 else -1.0)
        return self._o(0.0), reward, True, False, {}


class ObsActionDependentReward(_Probe):
    """Probe 5 — observation ±1 at random, one step, reward depends on both.

    Tests that the agent conditions its action on the observation.
    Discrete (2 actions): reward +1 when the action matches the observation
      (action 1 for obs +1, action 0 for obs -1), else -1;
      Q(+1, 1) = Q(-1, 0) = +1, Q(+1, 0) = Q(-1, 1) = -1.
    Continuous: reward = a * o; Q(o, a) = a * o, greedy action a = o.
    """

    summary = "reward depends on obs and action: Q(o, a) = +1 when a matches o"
    n_discrete_actions = 2

    def _first_obs(self) -> float:
        return float(self.np_random.choice([-1.0, 1.0]))

    def step(self, action):
        a = self._action_value(action)
        if self.continuous:
            reward = a * self._obs
        else:
            reward = 1.0 if (a == 1) == (self._obs > 0) else -1.0
        return self._o(0.0), reward, True, False, {}


class TimeLimitBootstrap(_Probe):
    """Probe "timelimit" — one action, observation 0, reward +1 every step, never terminal;
    every episode is cut by a time limit after `time_limit` steps (``truncated=True``).

    Tests that truncation is not treated as termination. The time is not in the
    observation, so the cut is not part of the MDP: the agent must bootstrap through it.
    Optimal values: V(0) = Q(0, a) = 1 / (1 - gamma) for every action a (2 at gamma 0.5).
    An agent that stores or treats the truncation as terminal learns
    (1 - gamma^T) / (1 - gamma) instead: 1 with the default T = 1.
    """

    summary = "reward +1 forever, cut by a time limit every step: V = 1/(1-gamma), not 1"

    def __init__(self, continuous: bool = False, time_limit: int = 1) -> None:
        super().__init__(continuous)
        if time_limit < 1:
            raise ValueError(f"time_limit must be >= 1, got {time_limit}")
        self.time_limit = time_limit

    def step(self, action):
        self._action_value(action)
        self._t += 1
        return self._o(0.0), 1.0, False, self._t >= self.time_limit, {}


_BY_NUMBER: dict[str, type[_Probe]] = {
    "1": ConstantReward,
    "2": ObsDependentReward,
    "3": TwoStepDiscount,
    "4": ActionDependentReward,
    "5": ObsActionDependentReward,
}
PROBES: dict[str, type[_Probe]] = {
    **_BY_NUMBER,
    **{f"{n}-continuous": cls for n, cls in _BY_NUMBER.items()},
    "timelimit": TimeLimitBootstrap,
    "timelimit-continuous": TimeLimitBootstrap,
}


def make_probe(name: str, **kwargs: Any) -> _Probe:
    """`name` is "<n>", "<n>-continuous", "timelimit" or "timelimit-continuous"; raises
    KeyError for anything else."""
    cls = PROBES[name]
    return cls(continuous=name.endswith("-continuous"), **kwargs)
