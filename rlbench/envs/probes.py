"""The five probe environments of Andy Jones, "Debugging RL without the agonizing pain".

Each isolates one piece of a value-learning agent, and each has values known exactly, so a
learning test checks numbers rather than "it ran". Every probe exists in two variants:
``probe:<n>`` with ``Discrete`` actions and ``probe:<n>-continuous`` with a ``Box(-1, 1, (1,))``
action. Observations are always ``Box(-1, 1, (1,), float32)``. The optimal values below
assume a discount ``gamma``; one-step episodes do not depend on it.

rlbench adds its own probes (each also with a ``-continuous`` variant), used by
``rlbench check``:

* ``probe:timelimit`` — the value of bootstrapping through a time-limit truncation;
* ``probe:timelimit-choice`` — the same piece seen in the greedy action: bootstrapping
  through the truncation makes one action better, storing it as terminal the other;
* ``probe:timelimit-eval`` — every episode is cut at a known step with a known return
  (the evaluation protocol must end episodes there);
* ``probe:nan-reward`` — the reward turns NaN after a few steps (a trainer must refuse it).

Conventions every probe keeps (tests/envs check them): observations take only the values
each docstring lists; the observation after a terminal step is 0 (what a trainer that
bootstraps through termination reads is fixed, so a probe test's expected numbers are);
only the ``timelimit`` probes ever truncate.
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
        if self._obs == 0.0:  # the observation is the whole state: 0 first, 1 second
            self._obs = 1.0
            return self._o(self._obs), 0.0, False, False, {}
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


class TimeLimitChoice(_Probe):
    """Probe "timelimit-choice" — bootstrapping through a truncation changes the greedy action.

    Episodes start at observation 0 or 1 with probability 1/2 each.
    * From obs 1 every action gives reward +1 and terminates: V(1) = 1.
    * From obs 0, action "cut" moves to obs 1 with reward 0, and the time limit cuts the
      episode right there (``truncated=True, terminated=False``); action "stop" gives
      reward 0.5 and terminates.
    The time is not in the observation, so the cut is not part of the MDP and obs 1 keeps
    its value V(1) = 1 behind it.

    Discrete (2 actions; "cut" is action 0, "stop" is action 1):
      Q(0, 0) = gamma · V(1) = gamma, Q(0, 1) = 0.5, Q(1, ·) = 1;
      greedy action 0 whenever gamma > 0.5 (0.9 vs 0.5 at gamma 0.9).
    Continuous (a in [-1, 1]): "cut" happens with probability (1 - a) / 2, "stop" otherwise,
      so Q(0, a) = gamma · (1 - a) / 2 + 0.5 · (1 + a) / 2, linear in a; greedy a = -1
      whenever gamma > 0.5; Q(1, ·) = 1.
    An agent that stores or treats the truncation as terminal learns Q(0, cut) = 0, so it
    picks "stop" (action 1 / a = +1) at every gamma: Q(0, a) = (1 + a) / 4.
    The time-limited return favours "stop", which is why the check reads the greedy action
    and values, not the evaluation return.
    """

    summary = "cut by a time limit into a state worth 1, or stop with 0.5: bootstrapping picks the cut"
    n_discrete_actions = 2
    stop_reward: ClassVar[float] = 0.5

    def _first_obs(self) -> float:
        return float(self.np_random.integers(2))

    def _cuts(self, action: Any) -> bool:
        a = self._action_value(action)
        if not self.continuous:
            return a == 0
        return bool(self.np_random.random() < (1.0 - a) / 2.0)

    def step(self, action):
        if self._obs == 1.0:
            self._action_value(action)
            return self._o(0.0), 1.0, True, False, {}
        if self._cuts(action):
            self._obs = 1.0
            return self._o(1.0), 0.0, False, True, {}
        return self._o(0.0), self.stop_reward, True, False, {}


class TimeLimitEval(TimeLimitBootstrap):
    """Probe "timelimit-eval" — reward +1 every step whatever the action; the time limit
    truncates every episode at step `time_limit` (10). The task itself would run on: an
    env stepped past its time limit keeps paying +1 and terminates at step 2 · `time_limit`
    (as a time-limited CartPole keeps going until the pole falls).

    Tests the evaluation protocol, not learning: every evaluation episode of any policy
    must complete with length 10 and return 10. An evaluator that ignores truncation runs
    on to the termination: length and return 20.
    """

    summary = "reward +1 per step, truncated at step 10 (terminates at 20 if run past it)"

    def __init__(self, continuous: bool = False, time_limit: int = 10) -> None:
        super().__init__(continuous, time_limit)

    def step(self, action):
        self._action_value(action)
        self._t += 1
        terminated = self._t >= 2 * self.time_limit
        return self._o(0.0), 1.0, terminated, not terminated and self._t >= self.time_limit, {}


class NaNReward(_Probe):
    """Probe "nan-reward" — probe 1 (observation 0, one step, reward +1) until the env
    instance has taken `nan_after` (20) steps; from then on the reward is NaN.

    Tests that a trainer refuses non-finite rewards with a clear error instead of training
    on them silently (a NaN in the TD target spreads through every weight in a few updates).
    """

    summary = "probe 1 whose reward turns NaN after 20 steps: training must stop with an error"

    def __init__(self, continuous: bool = False, nan_after: int = 20) -> None:
        super().__init__(continuous)
        self.nan_after = nan_after
        self._steps = 0

    def step(self, action):
        self._action_value(action)
        self._steps += 1
        reward = float("nan") if self._steps > self.nan_after else 1.0
        return self._o(0.0), reward, True, False, {}


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
    "timelimit-choice": TimeLimitChoice,
    "timelimit-choice-continuous": TimeLimitChoice,
    "timelimit-eval": TimeLimitEval,
    "timelimit-eval-continuous": TimeLimitEval,
    "nan-reward": NaNReward,
    "nan-reward-continuous": NaNReward,
}


def make_probe(name: str, **kwargs: Any) -> _Probe:
    """`name` is a key of `PROBES` ("<n>", "timelimit", ... and each "-continuous"
    variant); raises KeyError for anything else."""
    cls = PROBES[name]
    return cls(continuous=name.endswith("-continuous"), **kwargs)
