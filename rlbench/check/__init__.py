"""`rlbench check ALGO`: a battery of short probe runs with a verdict per check.

* `battery` — the checks (`run_battery`, `Battery`, `CheckResult`, `BatteryReport`);
* `cli` — the `rlbench check` subcommand.

What each check isolates and why its tolerance is what it is: docs/check.md.
"""

from rlbench.check.battery import (
    CHECK_NAMES,
    Battery,
    BatteryReport,
    CheckResult,
    run_battery,
)

__all__ = ["CHECK_NAMES", "Battery", "BatteryReport", "CheckResult", "run_battery"]
