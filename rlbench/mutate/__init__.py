"""`rlbench mutate`: RL-aware mutation testing of rlbench's own code.

The fault catalogue proves that the suite catches the bugs we documented; mutation testing
measures whether it catches the next one. Operators (`operators`) model RL bug classes
(discount dropped, done mask inverted, truncation treated as terminal, bootstrapping from
the online network, Polyak coefficients swapped, obs/next_obs swapped, RNG key reuse,
a dropped optimizer step or write-back, ...) plus generic comparison/constant changes.

Modules, one concept each: `operators` (what to change), `generate` (where: one mutant
per site, with a stable key), `selection` (which tests: per-test coverage),
`runner` (parallel isolated copies and the fork server), `allowlist` (reviewed equivalent
mutants), `report` (kill matrix, score, markdown/JSON), `engine` (the run), `cli`.

Engine choice. We use libcst for the rewrites and coverage.py for test selection, with a
small runner of our own, rather than cosmic-ray or mutmut. cosmic-ray does take operator
plugins (parso-based), but it applies each mutation to the file in the working tree it
runs in and runs one fixed test command per mutant: no per-test selection, and a
shared checkout (ours is shared between people) would see the mutants. mutmut 3 copies the
code to ``mutants/`` and compiles every mutant into "trampoline" functions switched by an
environment variable, with per-function test selection; but its operator set is fixed (no
plugin API for name-aware operators like ``target_net -> net``), the trampolines wrap every
function (they change what ``jax.jit``, ``nnx`` modules and ``torch.no_grad`` see) and it
cannot mutate module/class-level code. libcst gives lossless, formatting-preserving
single-node rewrites with position and expression-context metadata, which is all a
name-aware operator needs; coverage.py's dynamic contexts give test-level selection; the
rest (copies, a pre-warmed fork server, timeouts, the report) is a few hundred lines we
control.
"""
