"""The TD target, by hand, for DQN, IQN and SAC: one batch, one loss, no training.

Each test builds an agent whose target network differs from its online network by
construction, computes the TD target of a fixed batch from the *target* network's
parameters with the textbook formula, and compares it with what the agent's loss uses:

    DQN   y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')
          (double DQN: a' = argmax_a Q_online(s', a), valued by Q_target)
    IQN   y_j = r + gamma * (1 - terminated) * Z_target(s', a*; tau'_j),
          a* = argmax_a mean_j Z_target(s', a; tau'_j); quantile Huber loss weighted by the
          fractions tau_i the *online* network was evaluated at
    SAC   y = scale * r + gamma * (1 - terminated) * (min_k Q_target_k(s', a') - alpha log pi)

gamma is 0.5, so a target that drops the discount (1) or applies it twice (0.25) is off by
far more than the 1e-5 tolerance; rows that are truncated but not terminated must
bootstrap. On a mismatch the message names the bug whose target the agent's matches
(online bootstrap, discount dropped / doubled, done mask ignored / inverted, min for max,
obs for next_obs) when it matches one of them. Everything is seeded; the tolerance only
absorbs float32 summation order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

import torch
from torch import nn

from rlbench.config import DQNConfig, IQNConfig
from rlbench.trainers.dqn_torch import DQNAgent
from rlbench.trainers.iqn_torch import IQNAgent
from rlbench.trainers.q_learning import batch_to_tensors
from rlbench.types import Batch

CPU = torch.device("cpu")
GAMMA = 0.5
OBS_DIM, N_ACTIONS = 3, 3
TERMINATED = np.array([False, True, False, False, True, False])
TRUNCATED = np.array([True, False, False, True, False, False])  # time-limit cuts: bootstrap


def _batch(seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    n = len(TERMINATED)
    return Batch(
        obs=rng.standard_normal((n, OBS_DIM)).astype(np.float32),
        action=np.arange(n) % N_ACTIONS,
        reward=rng.uniform(-2.0, 2.0, n).astype(np.float32),
        next_obs=rng.standard_normal((n, OBS_DIM)).astype(np.float32),
        terminated=TERMINATED.copy(),
        truncated=TRUNCATED.copy(),
    )


@torch.no_grad()
def _make_target_differ(agent, seed: int = 1) -> None:
    """Target ← online + noise, plus a per-action offset on the output bias: the two
    networks now disagree everywhere, and their greedy actions too."""
    gen = torch.Generator().manual_seed(seed)
    for p in agent.target.parameters():
        p.add_(0.5 * torch.randn(p.shape, generator=gen))
    last = [m for m in agent.target.modules() if isinstance(m, nn.Linear)][-1]
    last.bias.add_(torch.tensor([2.0, -1.0, 0.5]))


def _variants(batch: Batch, bootstrap: Callable[[str, str, str], np.ndarray]) -> dict[str, np.ndarray]:
    """TD targets of the correct rule and of the usual one-line bugs.

    `bootstrap(net, obs_field, reduce)` gives the bootstrapped value per row of `net`
    ("target" | "online") at `obs_field` ("next_obs" | "obs") with `reduce` ("max" | "min").
    """
    r = batch.reward.astype(np.float64)
    live = 1.0 - batch.terminated.astype(np.float64)
    v = bootstrap("target", "next_obs", "max")
    return {
        "correct": r + GAMMA * live * v,
        "bootstrapped from the ONLINE network instead of the target":
            r + GAMMA * live * bootstrap("online", "next_obs", "max"),
        "discount dropped (gamma = 1)": r + live * v,
        "discount applied twice (gamma^2)": r + GAMMA**2 * live * v,
        "done mask ignored": r + GAMMA * v,
        "done mask inverted": r + GAMMA * (1.0 - live) * v,
        "truncation treated as terminal": r + GAMMA * live * (1.0 - batch.truncated) * v,
        "min instead of max over next actions": r + GAMMA * live * bootstrap("target", "next_obs", "min"),
        "obs used for next_obs": r + GAMMA * live * bootstrap("target", "obs", "max"),
    }


def _assert_target(got: np.ndarray, variants: dict[str, np.ndarray], what: str) -> None:
    want = variants["correct"]
    if np.allclose(got, want, rtol=1e-5, atol=1e-5):
        return
    culprits = [name for name, v in variants.items()
                if name != "correct" and np.allclose(got, v, rtol=1e-5, atol=1e-5)]
    hint = f"; it equals the target with the bug: {culprits[0]}" if culprits else ""
    pytest.fail(f"{what}: TD target {np.round(got, 5).tolist()} != r + gamma·(1 - terminated)·"
                f"bootstrap from the target network {np.round(want, 5).tolist()}{hint}")


def _assert_variants_separate(variants: dict[str, np.ndarray]) -> None:
    """Guard: the batch and networks tell every named bug apart from the correct target."""
    for name, v in variants.items():
        if name != "correct":
            assert np.abs(v - variants["correct"]).max() > 1e-2, f"batch cannot see: {name}"


# -- DQN -----------------------------------------------------------------------------------
def _dqn_agent(double_q: bool) -> DQNAgent:
    torch.manual_seed(0)
    config = DQNConfig(gamma=GAMMA, hidden_sizes=(16, 16), loss="mse", double_q=double_q)
    agent = DQNAgent(config, (OBS_DIM,), N_ACTIONS, CPU)
    with torch.no_grad():  # a fresh 16-16 net picks nearly the same action everywhere;
        for p in agent.online.parameters():  # doubled, its greedy action depends on the state
            p.mul_(2.0)
    _make_target_differ(agent)
    return agent


def _dqn_td_targets(agent: DQNAgent, batch: Batch) -> np.ndarray:
    """The target each row is regressed onto, read from the agent's own MSE loss: for a
    one-row batch, dL/dq = 2 (q - y), and dq/d(output bias[a]) = 1, so y = q - grad / 2."""
    last = [m for m in agent.online.modules() if isinstance(m, nn.Linear)][-1]
    ys = []
    for i in range(len(batch.reward)):
        tb = batch_to_tensors(Batch(*(np.asarray(f)[i:i + 1] for f in batch)), CPU)
        agent.online.zero_grad(set_to_none=True)
        agent.loss(tb).backward()
        a = int(batch.action[i])
        with torch.no_grad():
            q = agent.online(tb.obs)[0, a].item()
        ys.append(q - 0.5 * last.bias.grad[a].item())
    return np.array(ys)


def _dqn_bootstrap(agent: DQNAgent, batch: Batch, double_q: bool):
    @torch.no_grad()
    def bootstrap(net: str, field: str, reduce: str) -> np.ndarray:
        x = torch.as_tensor(getattr(batch, field))
        values = getattr(agent, net)(x).double()
        if double_q:  # the online net picks, `net` values it (min: the online net's worst)
            online = agent.online(x)
            pick = online.argmax(1) if reduce == "max" else online.argmin(1)
            return values.gather(1, pick[:, None]).squeeze(1).numpy()
        return (values.max(1).values if reduce == "max" else values.min(1).values).numpy()

    return bootstrap


@pytest.mark.parametrize("double_q", [False, True], ids=["dqn", "double-dqn"])
def test_dqn_td_target_bootstraps_from_the_target_network_with_gamma(double_q: bool) -> None:
    agent, batch = _dqn_agent(double_q), _batch()
    variants = _variants(batch, _dqn_bootstrap(agent, batch, double_q))
    _assert_variants_separate(variants)
    if double_q:  # the law is only visible where the two networks pick different actions
        with torch.no_grad():
            nxt = torch.as_tensor(batch.next_obs)
            assert (agent.online(nxt).argmax(1) != agent.target(nxt).argmax(1)).any()
        variants["double-Q: the target network picked the action"] = _variants(
            batch, _dqn_bootstrap(agent, batch, False))["correct"]
        with torch.no_grad():  # ... and where the online net picks differently at obs
            picks_at = {f: agent.online(torch.as_tensor(getattr(batch, f))).argmax(1)
                        for f in ("obs", "next_obs")}
            live = torch.as_tensor(~batch.terminated)
            assert ((picks_at["obs"] != picks_at["next_obs"]) & live).any()
            v = agent.target(nxt).double().gather(1, picks_at["obs"][:, None]).squeeze(1)
        variants["double-Q: the online net picked the action at obs, not next_obs"] = (
            batch.reward + GAMMA * (1.0 - batch.terminated) * v.numpy())
    _assert_target(_dqn_td_targets(agent, batch), variants, "double DQN" if double_q else "DQN")


def test_dqn_loss_is_the_mean_squared_td_error() -> None:
    """The loss value itself: mean over the batch of (Q_online(s, a) - y)^2 (a sign flip or a
    sum would still train in some direction, but not towards y)."""
    agent, batch = _dqn_agent(False), _batch()
    y = _variants(batch, _dqn_bootstrap(agent, batch, False))["correct"]
    with torch.no_grad():
        q = agent.online(torch.as_tensor(batch.obs)).double()
        q = q[np.arange(len(y)), torch.as_tensor(batch.action)].numpy()
    loss = agent.loss(batch_to_tensors(batch, CPU)).item()
    assert loss == pytest.approx(np.mean((q - y) ** 2), rel=1e-5), "DQN loss is not mean (q - y)^2"


# -- IQN -----------------------------------------------------------------------------------
def _reference_quantile_huber(pred: np.ndarray, taus: np.ndarray, target: np.ndarray,
                              kappa: float) -> float:
    """Dabney et al. (2018) eq. (3)-(4) in float64: sum over i, mean over j, mean over batch."""
    u = target[:, None, :] - pred[:, :, None]  # [B, N, N']
    huber = np.where(np.abs(u) <= kappa, 0.5 * u**2, kappa * (np.abs(u) - 0.5 * kappa))
    rho = np.abs(taus[:, :, None] - (u < 0)) * huber / kappa
    return float(rho.mean(2).sum(1).mean())


class _Calls:
    """Forward hooks that record (obs, taus) of every call of the online and target nets."""

    def __init__(self, agent: IQNAgent) -> None:
        self.calls: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        self.handles = [
            net.register_forward_hook(
                lambda mod, args, out, name=name: self.calls.append(
                    (name, args[0].detach().clone(), args[1].detach().clone())))
            for name, net in (("online", agent.online), ("target", agent.target))
        ]

    def find(self, net: str, obs: np.ndarray, n: int) -> torch.Tensor:
        """The taus [B, n] of the one call of `net` on `obs` with n fractions per row."""
        hits = [t for name, o, t in self.calls if name == net and t.shape[1] == n
                and np.array_equal(o.numpy(), obs)]
        assert len(hits) == 1, (
            f"expected the IQN loss to evaluate the {net} network once on this input with "
            f"{n} fractions, saw calls {[(name, tuple(t.shape)) for name, _, t in self.calls]}")
        return hits[0]


@pytest.mark.parametrize("double_q", [False, True], ids=["iqn", "double-iqn"])
def test_iqn_loss_uses_target_network_bootstrap_and_the_online_taus(double_q: bool) -> None:
    torch.manual_seed(0)
    c = IQNConfig(gamma=GAMMA, hidden_sizes=(16, 16), double_q=double_q, n_quantiles=8,
                  n_target_quantiles=6, k_quantiles=5, n_cos=8)
    agent = IQNAgent(c, (OBS_DIM,), N_ACTIONS, CPU)
    _make_target_differ(agent)
    batch = _batch()
    calls = _Calls(agent)
    loss = agent.loss(batch_to_tensors(batch, CPU)).item()
    for h in calls.handles:
        h.remove()
    taus = calls.find("online", batch.obs, c.n_quantiles)
    assert not any(name == "online" and np.array_equal(o.numpy(), batch.next_obs)
                   and t.shape[1] == c.n_target_quantiles for name, o, t in calls.calls), (
        "IQN bootstraps from the online network: the target quantiles must come from the "
        "target network")
    target_taus = calls.find("target", batch.next_obs, c.n_target_quantiles)

    b = len(batch.reward)
    rows = np.arange(b)
    with torch.no_grad():  # recompute every network output ourselves, float64 from here on
        z = agent.online(torch.as_tensor(batch.obs), taus).double().numpy()  # [B, N, A]
        z_next = agent.target(torch.as_tensor(batch.next_obs), target_taus).double().numpy()
        if double_q:
            k_taus = calls.find("online", batch.next_obs, c.k_quantiles)
            next_a = agent.online(torch.as_tensor(batch.next_obs), k_taus).mean(1).argmax(1).numpy()
        else:
            next_a = z_next.mean(1).argmax(1)
    pred = z[rows, :, batch.action]  # [B, N]
    r, live = batch.reward[:, None].astype(np.float64), 1.0 - batch.terminated[:, None]
    best = z_next[rows, :, next_a]  # [B, N']
    worst = z_next[rows, :, z_next.mean(1).argmin(1)]
    taus64 = taus.double().numpy()

    def qh(target: np.ndarray, fractions: np.ndarray = taus64) -> float:
        return _reference_quantile_huber(pred, fractions, target, c.kappa)

    want = qh(r + GAMMA * live * best)
    variants = {
        "discount dropped (gamma = 1)": qh(r + live * best),
        "discount applied twice (gamma^2)": qh(r + GAMMA**2 * live * best),
        "done mask ignored": qh(r + GAMMA * best),
        "done mask inverted": qh(r + GAMMA * (1.0 - live) * best),
        "truncation treated as terminal": qh(r + GAMMA * live * (1.0 - batch.truncated[:, None]) * best),
        "argmin instead of argmax over next actions": qh(r + GAMMA * live * worst),
        "quantile weights |tau - 1{u<0}| at other fractions than the online ones":
            qh(r + GAMMA * live * best, np.sort(taus64, axis=1)[:, ::-1]),
    }
    for name, v in variants.items():  # guard: the batch can see every named bug
        if not (double_q and name.startswith("argmin")):
            assert abs(v - want) > 1e-3, f"batch cannot see: {name}"
    if loss != pytest.approx(want, rel=1e-5):
        culprits = [n for n, v in variants.items() if loss == pytest.approx(v, rel=1e-5)]
        hint = (f"; it equals the loss with the bug: {culprits[0]}" if culprits else
                "; no target variant explains it: are the quantile weights |tau - 1{u<0}| "
                "taken at the fractions the online network was evaluated at?")
        pytest.fail(f"IQN loss {loss:.6f} != quantile Huber loss of the online quantiles at "
                    f"their own fractions tau against r + gamma·(1-terminated)·Z_target(s', a*) "
                    f"= {want:.6f}{hint}")


@pytest.mark.parametrize("agent_cls,config_cls", [(DQNAgent, DQNConfig), (IQNAgent, IQNConfig)],
                         ids=["dqn", "iqn"])
def test_td_target_is_deterministic_under_dropout(agent_cls, config_cls) -> None:
    """The target network is never trained and stays in eval mode, so with dropout on, the
    bootstrapped values of one batch are the same on every evaluation, before and after an
    update (train mode is for the online network only)."""
    torch.manual_seed(0)
    agent = agent_cls(config_cls(gamma=GAMMA, hidden_sizes=(16, 16), dropout=0.5),
                      (OBS_DIM,), N_ACTIONS, CPU)
    batch = _batch()
    x = torch.as_tensor(batch.next_obs)
    extra = (torch.full((len(batch.reward), 4), 0.5),) if agent_cls is IQNAgent else ()
    agent.update(batch)
    with torch.no_grad():
        first, second = agent.target(x, *extra), agent.target(x, *extra)
    assert torch.equal(first, second), (
        "the target network is in train mode: dropout makes the TD target random")
