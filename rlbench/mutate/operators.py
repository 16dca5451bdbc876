"""Mutation operators aimed at the bug classes of RL training loops.

An operator looks at one libcst node (with a little context: the enclosing function, the
names it uses, the attribute chains of the module) and yields replacement nodes, one per
mutant. `rlbench.mutate.generate` walks a module once, asks every operator at every node,
and applies each replacement on its own, so every mutant is a single-site change.

Most RL operators are name-driven (``gamma``, ``terminated``, ``target_*``, ``tau``,
``next_obs``...): the bugs they model are "the right code on the wrong variable", which
a syntax-only operator set (``+`` → ``-`` everywhere) reaches only by luck, while drowning
the report in mutants no RL engineer would write. The generic `comparison` and `constant`
operators cover the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

# -- name patterns: what the RL operators recognise ---------------------------------------
GAMMA = re.compile(r"^(gamma|discount|discount_factor)$")
DONE = re.compile(r"^(done|dones|terminal|terminals|terminated|terminateds|terminations)$")
TRUNC = re.compile(r"^(truncated|truncateds|truncations|timeout|timeouts|time_limit)$")
RNG_NAME = re.compile(r"(key|rng|seed)s?$")
TAU = re.compile(r"^(tau|polyak|polyak_tau|soft_tau)$")
LOSSY = re.compile(r"(loss|target|td|bellman|objective|advantage|returns?$)")
OBS_PAIRS = (("obs", "next_obs"), ("observation", "next_observation"),
             ("observations", "next_observations"), ("state", "next_state"))
MAXMIN = {"max": "min", "min": "max", "maximum": "minimum", "minimum": "maximum",
          "amax": "amin", "amin": "amax", "nanmax": "nanmin", "nanmin": "nanmax",
          "fmax": "fmin", "fmin": "fmax"}
ARGMAX = {"argmax": "argmin", "argmin": "argmax", "nanargmax": "nanargmin",
          "nanargmin": "nanargmax"}
SQUASH = {"tanh", "arctanh", "atanh", "sigmoid", "logit", "clip", "clamp", "clamp_", "clip_"}
SEEDING = {"default_rng", "PRNGKey", "key", "manual_seed", "seed", "RandomState", "Generator"}
# Calls whose loss a training loop survives "fine" but learns nothing or the wrong thing.
STEP_CALLS = re.compile(
    r"^(step|zero_grad|backward|update|.*_update|update_.*|soft_update|hard_update|polyak|"
    r"load_state_dict|load_weights|copy_|add|add_batch|flush_into|_flush.*|append|extend|"
    r"sync|publish|put|set_weights|_refresh.*|_advance|_store)$")
# Progress bars and loggers "update" too, but dropping them changes no learning.
REPORTING = re.compile(r"(bar|progress|logger|log|recorder|writer|pbar)$")
CASTS = {"astype", "float", "to", "bool", "int", "type", "double", "half"}


@dataclass(frozen=True)
class Context:
    """What an operator may know about a node besides the node itself."""

    parent: cst.CSTNode | None
    grandparent: cst.CSTNode | None
    function: str  # qualified name of the enclosing function, "<module>" at top level
    names: frozenset[str]  # Name identifiers used anywhere in the enclosing function
    attrs: frozenset[str]  # "base.attr" chains used anywhere in the module
    load: bool  # the node is a Name/Attribute read (not a store, not a def or keyword name)
    in_default: bool  # inside a default argument value or a decorator (import-time code)
    module_level: bool  # in a module- or class-level statement (constants, not logic)
    statement_target: str  # the name assigned by the enclosing statement, "" if none


class Operator:
    """Base class: a named, documented generator of replacement nodes."""

    name: str = ""
    doc: str = ""

    def mutate(self, node: cst.CSTNode, ctx: Context) -> Iterator[cst.CSTNode]:
        """Replacement nodes for `node` (nothing when the operator does not apply)."""
        return iter(())


# -- helpers -----------------------------------------------------------------------------
def terminal(expr: cst.CSTNode) -> str:
    """The last identifier of a Name or Attribute chain ("" otherwise)."""
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    return ""


def dotted(expr: cst.CSTNode) -> str:
    """"a.b.c" for an attribute chain of names ("" when anything else is in it)."""
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        base = dotted(expr.value)
        return f"{base}.{expr.attr.value}" if base else ""
    return ""


def strip(expr: cst.CSTNode) -> cst.CSTNode:
    """Look through casts (``x.astype(...)``, ``x.float()``, ``float(x)``) and subscripts
    (``x[:, None]``) to the variable underneath."""
    while True:
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and (
                expr.func.attr.value in CASTS):
            expr = expr.func.value
        elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and (
                expr.func.value in {"float", "bool", "int"}) and len(expr.args) == 1:
            expr = expr.args[0].value
        elif isinstance(expr, cst.Subscript):
            expr = expr.value
        else:
            return expr


def is_done(expr: cst.CSTNode) -> bool:
    return bool(DONE.match(terminal(strip(expr))))


def is_one(expr: cst.CSTNode) -> bool:
    return isinstance(expr, (cst.Integer, cst.Float)) and expr.evaluated_value == 1


def paren(expr: cst.BaseExpression) -> cst.BaseExpression:
    return expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def binop(left: cst.BaseExpression, op: cst.BaseBinaryOp,
          right: cst.BaseExpression) -> cst.BinaryOperation:
    return cst.BinaryOperation(left=left, operator=op, right=right)


def call_name(node: cst.Call) -> str:
    return terminal(node.func)


def rename(expr: cst.Name | cst.Attribute, new: str) -> cst.BaseExpression:
    if isinstance(expr, cst.Name):
        return expr.with_changes(value=new)
    return expr.with_changes(attr=expr.attr.with_changes(value=new))


def loaded_name(node: cst.CSTNode, ctx) -> tuple[str, set[str]] | None:
    """(its last name, the names it could be renamed to) for a Name or Attribute being read;
    None for anything else. Renaming operators only swap in a name that exists in scope."""
    if not ctx.load or not isinstance(node, (cst.Name, cst.Attribute)):
        return None
    known = ctx.names if isinstance(node, cst.Name) else {a.rsplit(".", 1)[1] for a in ctx.attrs}
    return terminal(node), known


def is_one_minus(node: cst.CSTNode, pred) -> bool:
    """``1 - x`` with `pred(x)`."""
    return (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Subtract)
            and is_one(node.left) and pred(node.right))


# -- the RL operators ----------------------------------------------------------------------
class DiscountDropped(Operator):
    name = "discount-dropped"
    doc = "gamma * x -> x: the discount factor vanishes from a TD target or return"

    def mutate(self, node, ctx):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
            if GAMMA.match(terminal(node.left)):
                yield node.right
            elif GAMMA.match(terminal(node.right)):
                yield node.left


class DiscountTwice(Operator):
    name = "discount-twice"
    doc = "gamma * x -> gamma * gamma * x: the discount is applied twice"

    def mutate(self, node, ctx):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
            for side in ("left", "right"):
                g = getattr(node, side)
                if GAMMA.match(terminal(g)):
                    yield node.with_changes(**{side: paren(binop(g, cst.Multiply(), g))})
                    return


class DoneInverted(Operator):
    name = "done-inverted"
    doc = "(1 - done) -> done, where(done, a, b) -> where(done, b, a), not done -> done"

    def mutate(self, node, ctx):
        if is_one_minus(node, is_done):
            yield node.right
        elif isinstance(node, cst.UnaryOperation) and isinstance(
                node.operator, (cst.Not, cst.BitInvert)) and is_done(node.expression):
            yield node.expression
        elif isinstance(node, cst.Call) and call_name(node) == "where" and len(node.args) == 3 \
                and is_done(node.args[0].value):
            a, b = node.args[1], node.args[2]
            yield node.with_changes(args=[node.args[0], b.with_changes(comma=a.comma),
                                          a.with_changes(comma=b.comma)])


class DoneIgnored(Operator):
    name = "done-ignored"
    doc = "(1 - done) -> 1, where(done, 0, x) -> x: terminal states bootstrap anyway"

    def mutate(self, node, ctx):
        if is_one_minus(node, is_done):
            yield node.left
        elif isinstance(node, cst.Call) and call_name(node) == "where" and len(node.args) == 3 \
                and is_done(node.args[0].value):
            yield node.args[2].value


class TruncationAsTerminal(Operator):
    name = "truncation-as-terminal"
    doc = "terminated -> terminated | truncated: a time limit is stored/treated as terminal"

    def mutate(self, node, ctx):
        if not ctx.load or not DONE.match(terminal(node)):
            return
        # `terminated or truncated` already ends on both: OR-ing truncated in is a no-op there.
        if isinstance(ctx.parent, (cst.BooleanOperation, cst.BinaryOperation)):
            return
        if isinstance(node, cst.Name):
            trunc = next((n for n in sorted(ctx.names) if TRUNC.match(n)), None)
            if trunc:
                yield paren(binop(node, cst.BitOr(), cst.Name(trunc)))
        elif isinstance(node, cst.Attribute):
            base = dotted(node.value)
            trunc = next((a for a in sorted(ctx.attrs) if base and a.startswith(base + ".")
                          and TRUNC.match(a[len(base) + 1:])), None)
            if trunc:
                yield paren(binop(node, cst.BitOr(), node.with_changes(
                    attr=cst.Name(trunc[len(base) + 1:]))))


class TruncationIgnored(Operator):
    name = "truncation-ignored"
    doc = "terminated or truncated -> terminated: a time limit does not end the episode"

    def mutate(self, node, ctx):
        if isinstance(node, cst.BooleanOperation) and isinstance(node.operator, cst.Or) or (
                isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr)):
            if TRUNC.match(terminal(strip(node.right))):
                yield node.left
            elif TRUNC.match(terminal(strip(node.left))):
                yield node.right


class BootstrapOnline(Operator):
    name = "bootstrap-online"
    doc = "target_net -> net, self.target -> self.online: bootstrap from the online network"

    def mutate(self, node, ctx):
        if (found := loaded_name(node, ctx)) is None:
            return
        name, known = found
        # target_key, target_rng, target_seed: RNG streams, whose reuse is rng-key-reuse's bug
        if name.startswith("target_") and name[7:] in known and not RNG_NAME.search(name):
            yield rename(node, name[7:])
        elif name == "target" and "online" in known:
            yield rename(node, "online")


class PolyakSwapped(Operator):
    name = "polyak-swapped"
    doc = "tau <-> 1 - tau: the soft target update keeps the new weights instead of the old"

    def mutate(self, node, ctx):
        if is_one_minus(node, lambda e: bool(TAU.match(terminal(e)))):
            yield node.right
        elif ctx.load and TAU.match(terminal(node)) and isinstance(
                ctx.parent, (cst.BinaryOperation, cst.Arg)) and not is_one_minus(
                ctx.parent, lambda e: e is node):
            yield paren(binop(cst.Float("1.0"), cst.Subtract(), node))


class _CallRename(Operator):
    table: dict[str, str] = {}

    def mutate(self, node, ctx):
        if isinstance(node, cst.Call) and isinstance(node.func, (cst.Name, cst.Attribute)):
            new = self.table.get(call_name(node))
            if new:
                yield node.with_changes(func=rename(node.func, new))


class MaxMin(_CallRename):
    name = "max-min"
    doc = "max <-> min (and maximum/minimum, amax/amin): the wrong extreme"
    table = MAXMIN

    def mutate(self, node, ctx):
        yield from super().mutate(node, ctx)
        if isinstance(node, cst.Call):  # clamp(max=...) <-> clamp(min=...)
            kws = {a.keyword.value for a in node.args if a.keyword}
            if kws & {"max", "min"} and not {"max", "min"} <= kws:
                yield node.with_changes(args=[
                    a.with_changes(keyword=cst.Name(MAXMIN[a.keyword.value]))
                    if a.keyword and a.keyword.value in ("max", "min") else a for a in node.args])


class ArgmaxArgmin(_CallRename):
    name = "argmax-argmin"
    doc = "argmax <-> argmin: the greedy action or bootstrap action picks the worst"
    table = ARGMAX


class ObsNextObs(Operator):
    name = "obs-next-obs"
    doc = "obs <-> next_obs: the transition's two observations swapped"

    def mutate(self, node, ctx):
        if (found := loaded_name(node, ctx)) is None:
            return
        name, known = found
        for a, b in OBS_PAIRS:
            for x, y in ((a, b), (b, a)):
                if name == x and y in known:
                    yield rename(node, y)


class SignFlip(Operator):
    name = "sign-flip"
    doc = "-x -> x, a + b <-> a - b, return loss -> return -loss, inside losses and targets"

    def mutate(self, node, ctx):
        in_scope = bool(LOSSY.search(ctx.function.rsplit(".", 1)[-1].lower())
                        or LOSSY.search(ctx.statement_target.lower()))
        if not in_scope:
            return
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
            yield node.expression
        elif isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
            yield node.with_changes(operator=cst.Subtract())
        elif isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Subtract) \
                and not is_one_minus(node, lambda e: is_done(e) or TAU.match(terminal(e))):
            yield node.with_changes(operator=cst.Add())
        elif isinstance(node, cst.Return) and node.value is not None and "loss" in (
                ctx.function.rsplit(".", 1)[-1].lower()) and not isinstance(
                node.value, (cst.Tuple, cst.Dict, cst.Name)):
            yield node.with_changes(value=cst.UnaryOperation(cst.Minus(), paren(node.value)))


class OffByOne(Operator):
    name = "off-by-one"
    doc = "i % n -> (i + 1) % n, x + k -> x + k +/- 1: ring-buffer and schedule arithmetic"

    def mutate(self, node, ctx):
        if not isinstance(node, cst.BinaryOperation):
            return
        if isinstance(node.operator, cst.Modulo) and not isinstance(
                node.left, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
            yield node.with_changes(left=paren(binop(node.left, cst.Add(), cst.Integer("1"))))
        elif isinstance(node.operator, (cst.Add, cst.Subtract)) and isinstance(
                node.right, cst.Integer):
            k = node.right.evaluated_value
            if k == 1:
                yield node.left
            elif k > 1:
                yield node.with_changes(right=cst.Integer(str(k - 1)))
            yield node.with_changes(right=cst.Integer(str(k + 1)))


class RngKeyReuse(Operator):
    name = "rng-key-reuse"
    doc = "a, b = split(key) -> a, b = key, key; fold_in(key, i) -> key: the same noise again"

    def mutate(self, node, ctx):
        if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call) and call_name(
                node.value) == "split" and node.value.args and isinstance(
                node.targets[0].target, cst.Tuple):
            key = node.value.args[0].value
            n = len(node.targets[0].target.elements)
            yield node.with_changes(value=cst.Tuple([cst.Element(key) for _ in range(n)]))
        elif isinstance(node, cst.Call) and call_name(node) == "fold_in" and node.args:
            yield node.args[0].value


class SeedReuse(Operator):
    name = "seed-reuse"
    doc = "default_rng(seed + i) -> default_rng(seed), seed=s + k -> seed=s: streams collide"

    def mutate(self, node, ctx):
        if not isinstance(node, cst.Call):
            return
        seeding = call_name(node) in SEEDING
        for i, arg in enumerate(node.args):
            is_seed = (arg.keyword is not None and arg.keyword.value == "seed") or (
                seeding and arg.keyword is None and i == 0)
            if is_seed and isinstance(arg.value, cst.BinaryOperation) and isinstance(
                    arg.value.operator, (cst.Add, cst.Subtract, cst.Multiply)):
                args = list(node.args)
                args[i] = arg.with_changes(value=arg.value.left)
                yield node.with_changes(args=args)


class StatementDropped(Operator):
    name = "statement-dropped"
    doc = "an optimizer step, target update, buffer write or state write-back is skipped"

    def mutate(self, node, ctx):
        # The small statement itself is replaced by `pass`, so a one-line `if x: y()` works.
        if not isinstance(node, cst.BaseSmallStatement) or ctx.module_level:
            return
        stmt = node
        drop = False
        if isinstance(stmt, cst.Expr) and isinstance(stmt.value, cst.Call):
            func = stmt.value.func
            base = terminal(func.value) if isinstance(func, cst.Attribute) else ""
            drop = bool(STEP_CALLS.match(call_name(stmt.value))) and not REPORTING.search(base)
        elif isinstance(stmt, (cst.Assign, cst.AugAssign)) and not ctx.function.endswith(
                "__init__"):
            targets = [t.target for t in stmt.targets] if isinstance(stmt, cst.Assign) else [
                stmt.target]
            value_names = {n.value for n in _names(stmt.value)}
            for t in targets:
                if isinstance(t, (cst.Attribute, cst.Subscript)) or isinstance(
                        stmt, cst.AugAssign):
                    drop = True  # self.x = ..., buf[i] = ..., x += ...: a state write
                elif isinstance(t, cst.Name) and t.value in value_names:
                    drop = True  # state = update(state, ...): a functional write-back
        if drop:
            yield cst.Pass()


def _names(node: cst.CSTNode) -> Iterator[cst.Name]:
    """Variables read in `node` (``a.b`` reads ``a``; ``b`` is an attribute, not a name)."""
    if isinstance(node, cst.Name):
        yield node
    elif isinstance(node, cst.Attribute):
        yield from _names(node.value)
        return
    for child in node.children:
        yield from _names(child)


class SquashMismatch(Operator):
    name = "squash-mismatch"
    doc = "tanh(x) -> x, arctanh(x) -> x, clip(x, lo, hi) -> x: squash/unsquash out of step"

    def mutate(self, node, ctx):
        if isinstance(node, cst.Call) and call_name(node) in SQUASH and node.args:
            if isinstance(node.func, cst.Attribute) and call_name(node) in {"clamp", "clamp_",
                                                                            "clip_"}:
                if call_name(node) == "clamp" and not node.args[0].keyword:
                    pass  # torch.clamp(x, ...): x is the first argument
                else:
                    return  # x.clamp_(...) works in place: dropping it is statement-dropped
            first = node.args[0]
            if first.keyword is None and first.star == "":
                yield first.value


# -- generic operators ---------------------------------------------------------------------
_CMP = {cst.LessThan: cst.LessThanEqual, cst.LessThanEqual: cst.LessThan,
        cst.GreaterThan: cst.GreaterThanEqual, cst.GreaterThanEqual: cst.GreaterThan,
        cst.Equal: cst.NotEqual, cst.NotEqual: cst.Equal, cst.Is: cst.IsNot,
        cst.IsNot: cst.Is, cst.In: cst.NotIn, cst.NotIn: cst.In}


class Comparison(Operator):
    name = "comparison"
    doc = "< <-> <=, > <-> >=, == <-> !=, is <-> is not, in <-> not in (boundaries, tests)"

    def mutate(self, node, ctx):
        if isinstance(node, cst.ComparisonTarget):
            new = _CMP.get(type(node.operator))
            if new is not None:
                yield node.with_changes(operator=new())


class Constant(Operator):
    name = "constant"
    doc = "k -> k + 1, x -> x + 1.0, True <-> False in logic (not import-time, shapes or call flags)"

    def mutate(self, node, ctx):
        if ctx.in_default or ctx.module_level:
            return  # default arguments and module constants run at import: no test selects them
        if isinstance(node, cst.Integer):
            # `x + 1` belongs to off-by-one; a subscript index is a shape, not logic.
            if isinstance(ctx.parent, cst.BinaryOperation) and isinstance(
                    ctx.parent.operator, (cst.Add, cst.Subtract)) and ctx.parent.right is node:
                return
            if isinstance(ctx.parent, (cst.Index, cst.Slice, cst.ComparisonTarget, cst.Arg)):
                return  # indices, axes and sizes are shapes; `x == 0` is `comparison`
            if isinstance(ctx.parent, cst.UnaryOperation) and isinstance(ctx.grandparent, cst.Arg):
                return  # reshape(-1) -> reshape(-2): numpy reads any negative size as -1
            yield cst.Integer(str(node.evaluated_value + 1))
        elif isinstance(node, cst.Float):
            yield cst.Float(repr(float(node.evaluated_value) + 1.0))
        elif isinstance(node, cst.Name) and node.value in ("True", "False") and ctx.load and not (
                isinstance(ctx.parent, cst.Arg) and ctx.parent.keyword is not None):
            # fused=True, set_to_none=True, non_blocking=True...: call flags, mostly speed
            yield node.with_changes(value="False" if node.value == "True" else "True")


OPERATORS: dict[str, Operator] = {op.name: op for op in (
    DiscountDropped(), DiscountTwice(), DoneInverted(), DoneIgnored(), TruncationAsTerminal(),
    TruncationIgnored(), BootstrapOnline(), PolyakSwapped(), MaxMin(), ArgmaxArgmin(),
    ObsNextObs(), SignFlip(), OffByOne(), RngKeyReuse(), SeedReuse(), StatementDropped(),
    SquashMismatch(), Comparison(), Constant(),
)}
