"""rlbench DQN against CleanRL's `dqn.py` loop at CleanRL's settings, same machine.

    python scripts/dqn_vs_cleanrl.py --steps 500000 --pairs 3

Runs the two sides back to back, each in its own process (rlbench sets torch to one thread
per process; CleanRL keeps torch's default), `--pairs` times, and prints wall and CPU
steps/s with the ratios. The README's DQN-vs-CleanRL row comes from this script.

The CleanRL side is a local transcription of CleanRL's `dqn.py` training loop (v1.0,
MIT licence, https://github.com/vwxyzjn/cleanrl) without its tensorboard/wandb logging,
which only makes it faster: one CartPole-v1 env, an SB3 replay buffer, a 120-84 MLP, train
every 10 steps from step 10,000 with batch 128, MSE loss, Adam 2.5e-4, target copy every
500 steps, epsilon 1 → 0.05 over half the run. The rlbench side runs `fit` with the same
settings (its target period is counted in updates: 50 updates = 500 env steps), plus the
gradient clipping rlbench always does. Both time from the first env step (construction
and torch's one-off lazy imports excluded) to the end of training.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time

SEED = 1


def cleanrl(total_steps: int) -> dict[str, float]:
    import gymnasium as gym
    import numpy as np
    import torch
    import torch.nn.functional as F
    from stable_baselines3.common.buffers import ReplayBuffer
    from torch import nn

    learning_rate, buffer_size, gamma, batch_size = 2.5e-4, 10_000, 0.99, 128
    target_network_frequency, learning_starts, train_frequency = 500, 10_000, 10
    start_e, end_e, exploration_fraction = 1.0, 0.05, 0.5

    def linear_schedule(duration: float, t: int) -> float:
        return max((end_e - start_e) / duration * t + start_e, end_e)

    def q_net(envs) -> nn.Module:
        return nn.Sequential(
            nn.Linear(int(np.prod(envs.single_observation_space.shape)), 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, envs.single_action_space.n))

    random.seed(SEED)
    np.random.seed(SEED)  # noqa: NPY002 - CleanRL seeds the legacy global RNG (SB3 samples from it)
    torch.manual_seed(SEED)

    def make_env():
        env = gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1"))
        env.action_space.seed(SEED)
        return env

    envs = gym.vector.SyncVectorEnv([make_env],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    q_network, target_network = q_net(envs), q_net(envs)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=learning_rate)
    target_network.load_state_dict(q_network.state_dict())
    rb = ReplayBuffer(buffer_size, envs.single_observation_space, envs.single_action_space,
                      torch.device("cpu"), handle_timeout_termination=False)
    wall, cpu = time.perf_counter(), time.process_time()
    obs, _ = envs.reset(seed=SEED)
    for global_step in range(total_steps):
        epsilon = linear_schedule(exploration_fraction * total_steps, global_step)
        if random.random() < epsilon:
            actions = np.array([envs.single_action_space.sample()])
        else:
            actions = torch.argmax(q_network(torch.Tensor(obs)), dim=1).cpu().numpy()
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        real_next_obs = next_obs.copy()
        for idx, trunc in enumerate(truncations):
            if trunc:
                real_next_obs[idx] = infos["final_obs"][idx]
        rb.add(obs, real_next_obs, actions, rewards, terminations, infos)
        obs = next_obs
        if global_step > learning_starts:
            if global_step % train_frequency == 0:
                data = rb.sample(batch_size)
                with torch.no_grad():
                    target_max, _ = target_network(data.next_observations).max(dim=1)
                    td_target = data.rewards.flatten() + gamma * target_max * (
                        1 - data.dones.flatten())
                old_val = q_network(data.observations).gather(1, data.actions).squeeze()
                loss = F.mse_loss(td_target, old_val)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if global_step % target_network_frequency == 0:  # CleanRL's soft update, tau = 1
                for t, q in zip(target_network.parameters(), q_network.parameters()):
                    t.data.copy_(1.0 * q.data + (1.0 - 1.0) * t.data)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def rlbench(total_steps: int) -> dict[str, float]:
    import torch

    from rlbench.config import DQNConfig
    from rlbench.trainers.dqn_torch import DQNAgent
    from rlbench.trainers.q_learning import fit

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # torch's one-off lazy imports
    config = DQNConfig(
        total_steps=total_steps, learning_rate=2.5e-4, buffer_size=10_000, batch_size=128,
        gamma=0.99, target_update="hard", target_update_interval=50, train_frequency=10,
        learning_starts=10_000, exploration_fraction=0.5, epsilon_min=0.05, loss="mse",
        hidden_sizes=(120, 84), max_grad_norm=10.0, lr_schedule="constant",
        eval_interval=total_steps, eval_episodes=1, seed=SEED,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    fit(config, DQNAgent, "dqn", progress=False)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


SIDES = {"cleanrl": cleanrl, "rlbench": rlbench}


def run_side(side: str, steps: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--side", side, "--steps", str(steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # one side, in-process
    args = parser.parse_args()
    if args.side:
        print(json.dumps(SIDES[args.side](args.steps)))
        return
    print("| pair | CleanRL steps/s wall (CPU) | rlbench steps/s wall (CPU) | ratio wall | ratio CPU |")
    print("|---:|---:|---:|---:|---:|")
    for pair in range(1, args.pairs + 1):
        c, r = run_side("cleanrl", args.steps), run_side("rlbench", args.steps)
        cw, cc = args.steps / c["wall_s"], args.steps / c["cpu_s"]
        rw, rc = args.steps / r["wall_s"], args.steps / r["cpu_s"]
        print(f"| {pair} | {cw:,.0f} ({cc:,.0f}) | {rw:,.0f} ({rc:,.0f}) | {rw / cw:.2f}× | "
              f"{rc / cc:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
