"""Device choice: SAC honours --device like the torch trainers, and parallel nightly jobs
each get their own GPU, or an equal share of one (JAX preallocates 75% of a GPU per process
by default, so two unshared jobs on one GPU would fail)."""

from __future__ import annotations

import pytest

from rlbench.processes import gpu_job_env, visible_gpus


def test_without_gpus_jobs_get_no_device_environment() -> None:
    assert gpu_job_env(0, 4, []) == {}


def test_each_job_gets_its_own_gpu_while_there_are_enough() -> None:
    envs = [gpu_job_env(slot, 2, ["0", "1", "2"]) for slot in range(2)]
    assert {e["CUDA_VISIBLE_DEVICES"] for e in envs} == {"0", "1"}
    assert all("XLA_PYTHON_CLIENT_MEM_FRACTION" not in e for e in envs)


def test_shared_gpus_split_jax_memory_between_their_jobs() -> None:
    envs = [gpu_job_env(slot, 5, ["3", "7"]) for slot in range(5)]
    per_gpu: dict[str, int] = {}
    for env in envs:
        per_gpu[env["CUDA_VISIBLE_DEVICES"]] = per_gpu.get(env["CUDA_VISIBLE_DEVICES"], 0) + 1
    assert per_gpu == {"3": 3, "7": 2}
    fractions = {float(e["XLA_PYTHON_CLIENT_MEM_FRACTION"]) for e in envs}
    assert fractions == {0.3}  # ceil(5 / 2) = 3 sharers at most: 3 × 0.3 fits in one GPU


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []


def _jax_has_gpu() -> bool:
    import jax

    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def test_sac_runs_where_device_says() -> None:
    pytest.importorskip("jax")
    import jax
    from flax import nnx

    from rlbench.config import SACConfig
    from rlbench.trainers.sac_jax import SAC, resolve_device

    assert resolve_device("cpu").platform == "cpu"
    sac = SAC(SACConfig(env_id="probe:1-continuous", device="cpu", learning_starts=16,
                        batch_size=8, chunk_updates=4, hidden_sizes=(8,), total_steps=64))
    cpu = jax.devices("cpu")[0]
    for when in ("built", "after updates"):
        # Committed, not merely created there: jitted work follows committed arguments, so
        # it stays on the chosen device even where JAX's default device is a GPU.
        leaves = [*jax.tree.leaves(sac.state), *jax.tree.leaves(sac.buffer_state),
                  *sac.actor_leaves, *jax.tree.leaves(nnx.state(sac.model))]
        assert all(leaf.devices() == {cpu} for leaf in leaves), when
        assert all(leaf.committed for leaf in leaves), f"{when}: state not committed to the device"
        sac.advance(32)
    if not _jax_has_gpu():
        with pytest.raises(ValueError, match="device=cuda, but JAX sees no GPU"):
            SAC(SACConfig(env_id="probe:1-continuous", device="cuda"))


@pytest.mark.gpu
def test_sac_on_the_gpu() -> None:
    pytest.importorskip("jax")
    if not _jax_has_gpu():
        pytest.skip("JAX sees no GPU")
    import jax

    from rlbench.config import SACConfig
    from rlbench.trainers.sac_jax import SAC

    sac = SAC(SACConfig(env_id="probe:1-continuous", device="cuda", learning_starts=16,
                        batch_size=8, chunk_updates=4, hidden_sizes=(8,), total_steps=64))
    sac.advance(64)
    assert all(leaf.devices() == {jax.devices("gpu")[0]} for leaf in jax.tree.leaves(sac.state))
