"""rlbench: reference RL trainers kept honest by property tests, replay goldens,
a fault kill matrix, asv benchmarks and a nightly learning-curve verdict."""

__version__ = "0.1.0"
