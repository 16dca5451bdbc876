"""The documented-fault catalogue and the tools over it.

* `catalogue` — every documented training-loop bug as data, and its switch
  (`active_faults`); the only part the trainers and buffers import, so this package
  imports nothing heavier;
* `detectors` — whether a row's pytest node ids can serve as detectors;
* `verify` — the kill matrix (`rlbench faults verify`);
* `impact` — how much each fault hurts learning (`rlbench faults impact`);
* `cli` — the `rlbench faults` subcommands.
"""

from rlbench.faults.catalogue import (
    ANALYSIS,
    BY_ID,
    CATALOGUE,
    ENV_VAR,
    MULTIPROC,
    SOURCE_NAMES,
    Fault,
    active_faults,
    parse_faults,
)

__all__ = [
    "ANALYSIS", "BY_ID", "CATALOGUE", "ENV_VAR", "MULTIPROC", "SOURCE_NAMES",
    "Fault", "active_faults",
    "parse_faults",
]
