"""The reviewed list of equivalent mutants (``mutants-allow.toml`` at the project root).

An equivalent mutant cannot change behaviour, so no test can kill it. Each entry names
one mutant by its stable key (file, operator, enclosing function, normalized original and
replacement, occurrence: no line numbers, so unrelated edits keep it valid) and says in
one line why it is equivalent. Allow-listed mutants are reported as "equivalent" and
left out of the score's denominator; they are never silently dropped::

    [[equivalent]]
    key = "3f2a9c1b7d4e"
    file = "rlbench/trainers/q_learning/agent.py"
    operator = "constant"
    function = "QAgent._clip_grads"
    change = "1e-6 -> 1.000001"
    reason = "only guards a zero norm; no test batch has a zero gradient"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from rlbench.mutate.generate import Mutant


@dataclass(frozen=True)
class Entry:
    key: str
    reason: str
    file: str = ""
    operator: str = ""
    function: str = ""
    change: str = ""


def load(path: Path | None) -> dict[str, Entry]:
    """key -> entry; an absent file is an empty list. A malformed entry is a ValueError."""
    if path is None or not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    entries: dict[str, Entry] = {}
    for i, raw in enumerate(data.get("equivalent", [])):
        if not raw.get("key") or not str(raw.get("reason", "")).strip():
            raise ValueError(f"{path}: equivalent entry {i + 1} needs a key and a reason")
        entries[raw["key"]] = Entry(**{k: str(v) for k, v in raw.items()
                                       if k in Entry.__dataclass_fields__})
    return entries


def entry_for(mutant: Mutant, reason: str = "TODO: why can this not change behaviour?") -> str:
    """A TOML entry for `mutant`, to paste into the allow-list after review."""
    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "\n".join([
        "[[equivalent]]", f"key = {q(mutant.key)}", f"file = {q(mutant.file)}",
        f"operator = {q(mutant.operator)}", f"function = {q(mutant.function)}",
        f"change = {q(mutant.original + ' -> ' + mutant.replacement)}",
        f"reason = {q(reason)}", ""])
