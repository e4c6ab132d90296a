"""What every placement rule is: its kind, its registry name, whether it runs by default, and when it runs.

There are three kinds of rule, each a base class here:

- `WeightedRule` looks at one Conv/ConvTranspose/Gemm/MatMul and either objects (returns a reason: the node
  stays in high precision) or stays silent. The first objection wins.
- `PatternRule` looks at one non-weighted node of its `op_types` (Add, pools, ...) after the weighted rules
  and answers with a `Verdict` (the inputs that get Q/DQ, possibly none) or None (not its candidate). A node
  takes the first rule that answers.
- `PostPassRule` refines the finished plan (e.g. `ConcatSharedScale` groups tensors that share a scale).

Every rule is registered in `RULES` with `@register_rule`; `PlacementConfig(enable_rules=...,
disable_rules=...)` turns rules on and off by name, and `plan_qdq` runs exactly the enabled ones, in the
order of `rule_names()`. A rule registered from outside trtq (a plugin) takes part like a built-in one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast, overload

from trtq.placement.graph import GraphIndex
from trtq.registry import Registry

if TYPE_CHECKING:
    import onnx

if TYPE_CHECKING:
    from trtq.placement.plan import QDQPlan

__all__ = [
    "PlacementContext",
    "Verdict",
    "PlanView",
    "Rule",
    "WeightedRule",
    "PatternRule",
    "PostPassRule",
    "ScaleGroups",
    "KINDS",
    "DEFAULT_ORDER",
    "RULES",
    "register_rule",
    "rule_names",
    "default_rule_names",
    "make_rules",
    "default_weighted_rules",
    "default_pattern_rules",
]

#: Rule kinds in the order they run: every weighted rule, then every pattern rule, then every post-pass.
KINDS = ("weighted", "pattern", "post-pass")

#: `order` of a rule registered without one: after every built-in rule of its kind (they use 100..600).
DEFAULT_ORDER = 1000


@dataclass
class PlacementContext:
    """What rules may look at: the graph, the user's choices, and facts computed once."""

    index: GraphIndex
    exclude_nodes: Sequence[str] = ()
    exclude_op_types: Sequence[str] = ()
    first_last: frozenset[str] = field(default_factory=frozenset)
    min_conv_channels: int = 16
    min_gemm_dim: int = 16
    batch_hint: int = 1


@dataclass
class Verdict:
    """A pattern rule's answer for one node."""

    inputs: list[str]
    reason: str
    fused_input: str | None = None  # ResidualAdd: the input produced by the convolution it fuses into


@dataclass
class PlanView:
    """The plan so far, as pattern rules see it."""

    quantized: set[str]  # weighted nodes with quantized inputs
    consumers: dict[str, list[str]]  # tensor -> nodes that read its DequantizeLinear output
    fused_adds: dict[str, str] = field(default_factory=dict)  # residual Add -> its conv-fused input

    def reads_dq(self, tensor: str, node: str) -> bool:
        """Whether `node` reads the dequantized `tensor` in the plan so far."""
        return node in self.consumers.get(tensor, ())


class Rule:
    """Base of every placement rule; subclass `WeightedRule`, `PatternRule` or `PostPassRule`.

    `@register_rule` sets `name`, `default` and `order`. A rule class is instantiated with no arguments
    once per `plan_qdq` call, so it keeps no state between plans.

    Attributes:
        name: the registry name (`--enable-rule NAME`, `Decision.rule`).
        kind: "weighted", "pattern" or "post-pass", from the base class.
        default: whether the rule runs when the config does not name it.
        order: position among the rules of its kind (lower runs first; ties run in registration order).
        switchable: False for rules that act only on a user option of their own (`exclude_nodes`, ...):
            they cannot be disabled by name; leaving the option empty turns them off.
    """

    name: ClassVar[str] = "Rule"
    kind: ClassVar[str] = ""
    default: ClassVar[bool] = True
    order: ClassVar[int] = DEFAULT_ORDER
    switchable: ClassVar[bool] = True


class WeightedRule(Rule):
    """Base class: `check` returns a reason to keep the weighted node in high precision, or None.

    Attributes:
        vetoes_patterns: the rule's objection also keeps a pattern rule's candidate node (an Add, a pool)
            free of Q/DQ (the user's exclusions do this).
    """

    name: ClassVar[str] = "WeightedRule"
    kind: ClassVar[str] = "weighted"
    vetoes_patterns: ClassVar[bool] = False

    def check(self, node: onnx.NodeProto, ctx: PlacementContext) -> str | None:
        """A reason to keep `node` in high precision, or None to let it be quantized.

        Args:
            node: a Conv, ConvTranspose, Gemm or MatMul (or, for `vetoes_patterns` rules, a pattern
                rule's candidate).
            ctx: the graph and the user's choices.

        Returns:
            The reason, one line, or None.
        """
        raise NotImplementedError


class PatternRule(Rule):
    """Base class for rules on non-weighted nodes; `op_types` lists the node types the rule looks at."""

    name: ClassVar[str] = "PatternRule"
    kind: ClassVar[str] = "pattern"
    op_types: ClassVar[tuple[str, ...]] = ()

    def apply(self, node: onnx.NodeProto, ctx: PlacementContext, view: PlanView) -> Verdict | None:
        """The inputs of `node` that get Q/DQ and why, or None when `node` is not this rule's candidate.

        Args:
            node: a node whose op type is in `op_types`, not yet decided by an earlier rule.
            ctx: the graph and the user's choices.
            view: the plan built so far.

        Returns:
            A `Verdict` (its `inputs` may be empty: decided, nothing quantized), or None.
        """
        raise NotImplementedError


class PostPassRule(Rule):
    """Base class for rules that refine the finished plan (after every weighted and pattern rule)."""

    name: ClassVar[str] = "PostPassRule"
    kind: ClassVar[str] = "post-pass"

    def refine(self, plan: QDQPlan, ctx: PlacementContext) -> None:
        """Change `plan` in place, keeping its activations, consumers and decisions consistent.

        Args:
            plan: the plan the weighted and pattern rules made.
            ctx: the graph and the user's choices.
        """
        raise NotImplementedError


RULES: Registry[type[Rule]] = Registry("placement rule", "--enable-rule/--disable-rule")

R = TypeVar("R", bound=Rule)


@overload
def register_rule(name: type[R]) -> type[R]: ...


@overload
def register_rule(
    name: str | None = None, *, default: bool = True, order: int = DEFAULT_ORDER
) -> Callable[[type[R]], type[R]]: ...


def register_rule(
    name: str | type[R] | None = None, *, default: bool = True, order: int = DEFAULT_ORDER
) -> type[R] | Callable[[type[R]], type[R]]:
    """Register a rule class in `RULES`: `@register_rule("MyRule", default=False, order=450)`.

    Args:
        name: the registry name; the class name when omitted (`@register_rule()` or `@register_rule`).
        default: whether the rule runs without being named in `enable_rules`.
        order: position among the rules of its kind (built-ins use 100, 200, ...; see `rule_names`).

    Returns:
        A decorator that registers the class and returns it unchanged apart from `name`, `default` and
        `order`.

    Raises:
        TypeError: the class is not a `WeightedRule`, `PatternRule` or `PostPassRule`.
        ValueError: the name or the class is registered already, or a pattern rule lists no `op_types`.
    """
    if isinstance(name, type):
        return register_rule()(name)

    def deco(cls: type[R]) -> type[R]:
        if not (isinstance(cls, type) and issubclass(cls, (WeightedRule, PatternRule, PostPassRule))):
            raise TypeError(
                f"@register_rule needs a WeightedRule, PatternRule or PostPassRule class, got {cls!r}"
            )
        if issubclass(cls, PatternRule) and not cls.op_types:
            raise ValueError(f"pattern rule {cls.__name__} lists no op_types, so it would never run")
        if any(entry is cls for _, entry in RULES.items()):
            raise ValueError(f"placement rule class {cls.__name__} is registered twice")
        rule_name = name or cls.__name__
        RULES.register(rule_name, cls)
        cls.name, cls.default, cls.order = rule_name, default, order
        return cls

    return deco


def rule_names(kind: type[Rule] = Rule) -> list[str]:
    """Registered rule names (of one kind: `WeightedRule`, ...) in the order they run.

    That is by kind (`KINDS`), then `order`, then registration order.
    """
    position = {name: i for i, name in enumerate(RULES.names())}
    entries = [(name, cls) for name, cls in RULES.items() if issubclass(cls, kind)]
    entries.sort(key=lambda e: (KINDS.index(e[1].kind), e[1].order, position[e[0]]))
    return [name for name, _ in entries]


def default_rule_names() -> tuple[str, ...]:
    """Names of the rules that run when a config names none, in the order they run."""
    return tuple(name for name in rule_names() if RULES.get(name).default)


def make_rules(kind: type[R], names: Iterable[str]) -> list[R]:
    """Instances of the rules of one kind among `names` (names or aliases), in the order they run.

    Args:
        kind: `WeightedRule`, `PatternRule` or `PostPassRule`.
        names: the enabled rules (e.g. `PlacementConfig.enabled_rules()`); other kinds are skipped.

    Returns:
        One fresh instance per rule.

    Raises:
        UsageError: a name is not registered (the message lists the registered rules).
    """
    wanted = {RULES.get(n).name for n in names}
    out: list[R] = []
    for name in rule_names(kind):
        if name in wanted:
            out.append(cast(R, RULES.get(name)()))
    return out


def default_weighted_rules() -> list[WeightedRule]:
    """The weighted rules that run by default, in order (first objection wins)."""
    return make_rules(WeightedRule, default_rule_names())


def default_pattern_rules() -> list[PatternRule]:
    """The pattern rules that run by default, in order (a node takes the first rule that answers)."""
    return make_rules(PatternRule, default_rule_names())


class ScaleGroups:
    """Tensors joined into groups that share one scale (a union-find over tensor names)."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def _root(self, x: str) -> str:
        parent = self._parent
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(self, a: str, b: str) -> None:
        """Put `a` and `b` (and their groups) in one group."""
        self._parent[self._root(a)] = self._root(b)

    def groups(self, activations: Sequence[str]) -> list[list[str]]:
        """The groups of two or more of `activations`, each in `activations` order, ordered by first member."""
        order = {t: i for i, t in enumerate(activations)}
        merged: dict[str, list[str]] = {}
        for t in sorted((t for t in self._parent if t in order), key=lambda t: order[t]):
            merged.setdefault(self._root(t), []).append(t)
        return [g for g in merged.values() if len(g) > 1]
