"""Config dataclasses: rlbench's fields plus the library's own hyper-parameters.

Every field that is not an rlbench field (`RLBENCH_FIELDS`) or ``net_arch`` is passed to
the algorithm's constructor under its own name, so the names and defaults here are SB3's
(sbx's where they differ). `rlbench train sb3-dqn --set NAME=VALUE` sets any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

RLBENCH_FIELDS = frozenset({"env_id", "seed", "total_steps", "eval_interval", "eval_episodes",
                            "torch_threads"})
"""Fields rlbench or the adapter reads; the rest (except ``net_arch``) are constructor
arguments."""


@dataclass(frozen=True)
class _Run:
    """What rlbench needs of any config."""

    env_id: str = "CartPole-v1"
    """rlbench env id (`rlbench envs`): gymnasium, ``dmc:<domain>-<task>`` or ``probe:<n>``."""
    seed: int = 0
    """Seeds the model (torch/JAX, action sampling) and the env's first reset."""
    total_steps: int = 100_000
    """Env steps of the whole run; SB3's schedules (exploration, learning rate) span it."""
    eval_interval: int = 10_000
    """Env steps between rlbench's evaluations (`rlbench.evaluation`, greedy policy)."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    device: str = "auto"
    """torch device for SB3 ("auto": CUDA when present); sbx runs where JAX does."""
    torch_threads: int = 1
    """torch intra-op threads on CPU, set process-wide when a trainer is built (rlbench's
    convention; SB3 leaves torch's default, one per core, which on a busy 2-core box makes
    its small-MLP updates many times slower). 0 keeps torch's own setting."""


@dataclass(frozen=True)
class _DQNFields(_Run):
    """The DQN fields SB3 and sbx share (SB3's defaults)."""

    gamma: float = 0.99
    """Discount factor."""
    learning_rate: float = 1e-4
    """Adam learning rate (constant)."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 100
    """Env steps of uniformly random actions before the first gradient step."""
    batch_size: int = 32
    """Minibatch size per gradient step."""
    tau: float = 1.0
    """Target update coefficient (1.0: hard copy)."""
    train_freq: int = 4
    """Env steps between rounds of gradient steps."""
    gradient_steps: int = 1
    """Gradient steps per round."""
    target_update_interval: int = 10_000
    """Env steps between target-network updates."""
    exploration_fraction: float = 0.1
    """Fraction of `total_steps` over which epsilon decays linearly."""
    exploration_initial_eps: float = 1.0
    """Epsilon at step 0."""
    exploration_final_eps: float = 0.05
    """Epsilon after the decay."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the Q-network."""


@dataclass(frozen=True)
class DQNConfig(_DQNFields):
    """Stable-Baselines3 DQN with SB3's defaults (`stable_baselines3.DQN`)."""

    max_grad_norm: float = 10.0
    """Global gradient-norm clip."""


@dataclass(frozen=True)
class _SACFields(_Run):
    """The SAC fields SB3 and sbx share (SB3's defaults)."""

    env_id: str = "Pendulum-v1"
    """rlbench env id with Box actions (``dmc:cartpole-swingup``, ``probe:<n>-continuous``)."""
    gamma: float = 0.99
    """Discount factor."""
    learning_rate: float = 3e-4
    """Adam learning rate of actor, critics and temperature."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 100
    """Env steps of uniformly random actions before the first gradient step."""
    batch_size: int = 256
    """Minibatch size per gradient step."""
    tau: float = 0.005
    """Polyak coefficient of the target critics."""
    train_freq: int = 1
    """Env steps between rounds of gradient steps."""
    gradient_steps: int = 1
    """Gradient steps per round."""
    ent_coef: str = "auto"
    """Entropy coefficient: "auto" (learned, start 1.0), "auto_<init>", or a number."""
    target_entropy: str = "auto"
    """Target entropy of the learned temperature: "auto" (-|A|) or a number."""
    net_arch: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor and critics."""


@dataclass(frozen=True)
class SACConfig(_SACFields):
    """Stable-Baselines3 SAC with SB3's defaults (`stable_baselines3.SAC`)."""

    target_update_interval: int = 1
    """Gradient steps between target-critic updates."""


@dataclass(frozen=True)
class SbxDQNConfig(_DQNFields):
    """sbx DQN (`sbx.DQN`, JAX): SB3's DQN fields less the gradient clip (sbx has none),
    sbx's defaults."""

    target_update_interval: int = 1_000
    """Env steps between target-network updates (sbx's default)."""
    net_arch: tuple[int, ...] = (256, 256)
    """sbx's Q-network always has two hidden layers of ``net_arch[0]`` units (sbx's default
    256); further entries are ignored by sbx."""


@dataclass(frozen=True)
class SbxSACConfig(_SACFields):
    """sbx SAC (`sbx.SAC`, JAX): SB3's SAC fields less the target-update period (sbx
    updates the targets every gradient step), the same defaults."""
