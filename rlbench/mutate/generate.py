"""Mutant generation: parse a module once with libcst, offer every node to every operator,
and turn each replacement into a `Mutant` (the full mutated source plus a unified diff).

Nodes are replaced by identity (`MutationApplier`), so one mutant changes exactly one site
and libcst keeps every other byte (comments, formatting) as it was. A mutant that does not
compile or prints the same code as the original is dropped here: it is not a mutant.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import (
    ExpressionContext,
    ExpressionContextProvider,
    MetadataWrapper,
    PositionProvider,
)

from rlbench.mutate.operators import OPERATORS, Context, Operator, dotted

PRAGMA = "pragma: no mutate"
FAULT_MARK = re.compile(r"#\s*FAULT\b")


@dataclass
class Mutant:
    """One single-site change. `key` identifies it across edits that move lines (see
    `stable_key`); `uid` is unique within one run."""

    file: str  # path relative to the project root, posix
    line: int
    col: int
    end_line: int
    operator: str
    function: str
    original: str
    replacement: str
    diff: str
    key: str = ""
    uid: str = ""
    span: tuple[int, int] = (0, 0)  # lines of the enclosing statement (coverage lookup)
    source: str = field(default="", repr=False)  # the whole mutated module

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("source")
        d["span"] = list(self.span)
        return d


def normalize(code: str) -> str:
    """Whitespace-insensitive form of a code fragment (for stable keys)."""
    return re.sub(r"\s+", " ", code).strip()


def stable_key(file: str, operator: str, function: str, original: str, replacement: str,
               occurrence: int) -> str:
    """Id of a mutant that survives unrelated edits: no line numbers, only where (file,
    enclosing function) and what (operator, normalized original -> replacement), plus the
    occurrence index of that same change inside the function."""
    text = "|".join((file, operator, function, normalize(original), normalize(replacement),
                     str(occurrence)))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class MutationApplier(cst.CSTTransformer):
    """Replace one node (found by identity) with its mutant."""

    def __init__(self, target: cst.CSTNode, replacement: cst.CSTNode) -> None:
        super().__init__()
        self.target, self.replacement = target, replacement

    def on_leave(self, original_node, updated_node):
        if original_node is self.target:
            return self.replacement
        return updated_node


class _SiteFinder(cst.CSTVisitor):
    """One pass over the module collecting (node, replacement, context) for every operator."""

    METADATA_DEPENDENCIES = (PositionProvider, ExpressionContextProvider)

    def __init__(self, operators: Sequence[Operator], attrs: frozenset[str]) -> None:
        super().__init__()
        self.operators = operators
        self.attrs = attrs
        self.stack: list[cst.CSTNode] = []
        self.functions: list[tuple[str, frozenset[str]]] = [("<module>", frozenset())]
        self.classes: list[str] = []
        self.default_depth = 0
        self.statements: list[cst.CSTNode] = []
        # (node, replacement, operator name, enclosing statement, enclosing function)
        self.sites: list[tuple[cst.CSTNode, cst.CSTNode, str, cst.CSTNode | None, str]] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.FunctionDef):
            qual = ".".join([*self.classes, node.name.value]) if len(self.functions) == 1 else (
                f"{self.functions[-1][0]}.{node.name.value}")
            names = frozenset(n.value for n in _walk(node.body) if isinstance(n, cst.Name))
            names |= frozenset(p.name.value for p in _walk(node.params) if isinstance(p, cst.Param))
            self.functions.append((qual, names))
        elif isinstance(node, cst.ClassDef):
            self.classes.append(node.name.value)
        if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            self.statements.append(node)
        if isinstance(node, (cst.Decorator, cst.Annotation, cst.FormattedString, cst.Raise)) or (
                _skipped(node)):
            # Import-time code, type hints, error messages and opted-out code: no behaviour
            # a test should pin down. Pushed anyway: on_leave pops it.
            self.stack.append(node)
            return False
        if isinstance(self.stack[-1] if self.stack else None, cst.Param) and node is getattr(
                self.stack[-1], "default", None):
            self.default_depth += 1
        self._offer(node)
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.stack.pop()
        if isinstance(original_node, cst.FunctionDef):
            self.functions.pop()
        elif isinstance(original_node, cst.ClassDef):
            self.classes.pop()
        if self.statements and self.statements[-1] is original_node:
            self.statements.pop()
        if self.stack and isinstance(self.stack[-1], cst.Param) and original_node is getattr(
                self.stack[-1], "default", None):
            self.default_depth -= 1

    def _offer(self, node: cst.CSTNode) -> None:
        if isinstance(node, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
            return
        stmt = self.statements[-1] if self.statements else None
        if isinstance(stmt, cst.SimpleStatementLine) and _is_docstring(stmt):
            return
        parent = self.stack[-1] if self.stack else None
        try:
            load = self.get_metadata(ExpressionContextProvider, node) == ExpressionContext.LOAD
        except KeyError:
            load = False
        if isinstance(parent, cst.Attribute) and node is parent.attr:
            load = False
        function, names = self.functions[-1]
        ctx = Context(
            parent=parent, grandparent=self.stack[-2] if len(self.stack) > 1 else None,
            function=function, names=names, attrs=self.attrs, load=load,
            in_default=self.default_depth > 0,
            module_level=len(self.functions) == 1,
            statement_target=_assigned_name(stmt),
        )
        for op in self.operators:
            for replacement in op.mutate(node, ctx):
                self.sites.append((node, replacement, op.name, stmt, function))


def _comments(node: cst.CSTNode) -> list[str]:
    """The comments on the lines just above `node` and at the end of its line."""
    out = [ln.comment.value for ln in getattr(node, "leading_lines", ()) if ln.comment]
    trailing = getattr(node, "trailing_whitespace", None)
    if trailing is not None and trailing.comment:
        out.append(trailing.comment.value)
    return out


def _skipped(node: cst.CSTNode) -> bool:
    """A statement marked ``# FAULT`` or ``# pragma: no mutate`` (above it or at its end),
    or a function whose first statement is so marked (or whose ``def`` line carries the
    pragma). ``# FAULT`` marks the fault catalogue's injected bugs: they *are* the bugs,
    and mutating the switch that picks them only re-tests the kill matrix."""
    if isinstance(node, cst.FunctionDef):
        body = node.body
        header = getattr(body, "header", None)
        if header is not None and header.comment and PRAGMA in header.comment.value:
            return True
        first = body.body[0] if isinstance(body, cst.IndentedBlock) and body.body else None
        return first is not None and _skipped(first)
    if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
        return any(FAULT_MARK.search(c) or PRAGMA in c for c in _comments(node))
    return False


def _walk(node: cst.CSTNode) -> Iterable[cst.CSTNode]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _is_docstring(stmt: cst.SimpleStatementLine) -> bool:
    return len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr) and isinstance(
        stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))


def _assigned_name(stmt: cst.CSTNode | None) -> str:
    if isinstance(stmt, cst.SimpleStatementLine) and stmt.body:
        small = stmt.body[0]
        targets = []
        if isinstance(small, cst.Assign):
            targets = [t.target for t in small.targets]
        elif isinstance(small, (cst.AugAssign, cst.AnnAssign)):
            targets = [small.target]
        return " ".join(dotted(t) or "" for t in targets)
    return ""


def generate_mutants(
    path: str, source: str, operators: Sequence[Operator] | None = None,
    lines: set[int] | None = None,
) -> list[Mutant]:
    """All single-site mutants of `source` (the text of `path`), optionally only those whose
    node starts on one of `lines` (for --changed-since)."""
    ops = list(OPERATORS.values()) if operators is None else list(operators)
    module = cst.parse_module(source)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    attrs = frozenset(filter(None, (dotted(n) for n in _walk(module)
                                    if isinstance(n, cst.Attribute))))
    finder = _SiteFinder(ops, attrs)
    wrapper.visit(finder)
    positions = wrapper.resolve(PositionProvider)
    src_lines = source.splitlines(keepends=True)
    pragma_lines = {i + 1 for i, text in enumerate(src_lines) if PRAGMA in text}
    line_starts = [0]
    for text in src_lines:
        line_starts.append(line_starts[-1] + len(text))
    mutants: list[Mutant] = []
    seen: dict[tuple, int] = {}
    for node, replacement, op_name, stmt, function in finder.sites:
        replacement = _keep_parens(node, replacement)
        pos = positions[node]
        if lines is not None and not (set(range(pos.start.line, pos.end.line + 1)) & lines):
            continue
        if pos.start.line in pragma_lines:
            continue
        mutated = _splice(source, line_starts, pos, module, node, replacement)
        if mutated == source:
            continue
        try:
            compile(mutated, path, "exec")
        except SyntaxError:
            continue
        original = module.code_for_node(node)
        new = module.code_for_node(replacement)
        ident = (path, op_name, function, normalize(original), normalize(new))
        occurrence = seen.get(ident, 0)
        seen[ident] = occurrence + 1
        span_start = positions[stmt].start.line if stmt is not None else pos.start.line
        span_end = pos.end.line if isinstance(stmt, cst.BaseCompoundStatement) or stmt is None \
            else positions[stmt].end.line
        diff = "".join(difflib.unified_diff(
            src_lines, mutated.splitlines(keepends=True), f"a/{path}", f"b/{path}", n=1))
        m = Mutant(file=path, line=pos.start.line, col=pos.start.column + 1,
                   end_line=pos.end.line, operator=op_name, function=function,
                   original=normalize(original), replacement=normalize(new), diff=diff,
                   span=(span_start, max(span_end, pos.end.line)), source=mutated)
        m.key = stable_key(path, op_name, function, original, new, occurrence)
        mutants.append(m)
    for i, m in enumerate(mutants):
        m.uid = f"{Path(m.file).stem}-{i:04d}-{m.key[:6]}"
    return mutants


def _keep_parens(node: cst.CSTNode, replacement: cst.CSTNode) -> cst.CSTNode:
    """The original's parentheses belong to the site, not to the operand an operator
    returns: `(n + to - 1) // to` -> `(n + to) // to`, never `n + to // to`."""
    lpar = getattr(node, "lpar", None)
    if lpar and hasattr(replacement, "lpar") and not replacement.lpar:
        return replacement.with_changes(lpar=node.lpar, rpar=node.rpar)
    return replacement


def _splice(source: str, line_starts: list[int], pos, module: cst.Module, node: cst.CSTNode,
            replacement: cst.CSTNode) -> str:
    """The module with `node` replaced: a text splice at the node's position (re-printing
    the whole tree per mutant costs ~100x more), checked against libcst's own rendering of
    the node; the full transformer is the fallback when they disagree."""
    start = line_starts[pos.start.line - 1] + pos.start.column
    end = line_starts[pos.end.line - 1] + pos.end.column
    if source[start:end] == module.code_for_node(node):
        return source[:start] + module.code_for_node(replacement) + source[end:]
    return module.visit(MutationApplier(node, replacement)).code
