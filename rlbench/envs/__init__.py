"""`make(env_id, seed)`: one constructor for gymnasium, dm_control and probe environments.

Id families:
  * any gymnasium id, e.g. ``CartPole-v1``, ``Pendulum-v1``
  * ``dmc:<domain>-<task>``, e.g. ``dmc:cartpole-swingup`` (dm_control, flat float32 obs,
    actions in [-1, 1], time limit reported as ``truncated``)
  * ``probe:<n>`` (discrete actions) and ``probe:<n>-continuous`` for n in 1..5, and
    rlbench's own probes ``probe:timelimit``, ``probe:timelimit-choice``,
    ``probe:timelimit-eval``, ``probe:nan-reward`` (each also ``-continuous``)
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from rlbench.envs.probes import PROBES, make_probe

FAMILIES = {
    "gymnasium": "any registered gymnasium id, e.g. CartPole-v1, Pendulum-v1",
    "dmc": "dmc:<domain>-<task>, e.g. dmc:cartpole-swingup (needs rlbench[dmc])",
    "probe": "probe:1 .. probe:5, probe:timelimit, probe:timelimit-choice, probe:timelimit-eval, "
             "probe:nan-reward (discrete); add -continuous for a Box action",
}


class _SeedFirstReset(gym.Wrapper):
    """Uses the seed given to `make` for the first `reset()` that passes none.

    That makes `make(id, seed=s)` alone reproducible, while `reset(seed=s)` still
    re-seeds explicitly (the gymnasium convention).
    """

    def __init__(self, env: gym.Env, seed: int) -> None:
        super().__init__(env)
        self._pending_seed: int | None = seed
        env.action_space.seed(seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        else:
            self._pending_seed = None
        return self.env.reset(seed=seed, options=options)


def _unknown(env_id: str, why: str) -> ValueError:
    families = "; ".join(f"{k}: {v}" for k, v in FAMILIES.items())
    return ValueError(f"unknown env id {env_id!r} ({why}). Supported families: {families}")


def make(env_id: str, seed: int | None = None, **kwargs: Any) -> gym.Env:
    """Build an environment with the Gymnasium API from an rlbench env id."""
    if not isinstance(env_id, str) or not env_id:
        raise _unknown(str(env_id), "not a non-empty string")
    if env_id.startswith("dmc:"):
        from rlbench.envs.dmc import DMCEnv  # lazy: dm_control is an optional extra

        spec = env_id[len("dmc:") :]
        domain, sep, task = spec.partition("-")
        if not sep or not domain or not task:
            raise _unknown(env_id, "dm_control ids look like dmc:<domain>-<task>")
        env: gym.Env = DMCEnv(domain, task, seed=seed, **kwargs)
    elif env_id.startswith("probe:"):
        try:
            env = make_probe(env_id[len("probe:") :], **kwargs)
        except KeyError:
            raise _unknown(env_id, f"probe ids are {', '.join(list_probe_ids())}") from None
    else:
        try:
            env = gym.make(env_id, **kwargs)
        except gym.error.Error as exc:  # NameNotFound, VersionNotFound, NamespaceNotFound...
            raise _unknown(env_id, str(exc)) from None
    if seed is not None:
        env = _SeedFirstReset(env, seed)
    return env


def list_probe_ids() -> list[str]:
    return [f"probe:{name}" for name in PROBES]


def list_envs() -> list[tuple[str, str, str]]:
    """(id, family, description) rows for `rlbench envs`."""
    rows = [
        ("CartPole-v1", "gymnasium", "classic control, discrete; any gymnasium id works"),
        ("Pendulum-v1", "gymnasium", "classic control, continuous"),
        ("dmc:cartpole-swingup", "dmc", "dm_control; any dmc:<domain>-<task> works"),
    ]
    rows += [(f"probe:{name}", "probe", cls.summary) for name, cls in PROBES.items()]
    return rows


def is_discrete(env: gym.Env) -> bool:
    return isinstance(env.action_space, gym.spaces.Discrete)


__all__ = ["FAMILIES", "is_discrete", "list_envs", "list_probe_ids", "make"]
