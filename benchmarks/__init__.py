"""asv suites for rlbench: env steps, replay buffers, agent act/update steps, end-to-end training
throughput, learning progress, and (``peers``) speed against Stable-Baselines3 / sbx.

Run from the repo root: ``asv run --python=same``; the README's section "Benchmarks: speed and
learning progress across commits" says more.
"""
