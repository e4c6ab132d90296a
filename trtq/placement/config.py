"""`PlacementConfig`: what the user controls about Q/DQ placement, and which placement rules run.

Rules are turned on and off by their registry name (`enable_rules`, `disable_rules`; on the command line
`--enable-rule NAME` and `--disable-rule NAME`). The booleans of trtq 0.1 (`skip_small_convs`, ...) are
still accepted, with a DeprecationWarning naming the rule to disable instead, and folded into
`disable_rules` (False) or dropped (True: the rule runs by default); they go in trtq 0.3.0.

The config is a plain dataclass whose fields are JSON values: `PlacementConfig(**dataclasses.asdict(c))`
rebuilds it (report.json records it that way).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trtq.errors import UsageError
from trtq.placement.rules import RULES, rule_names

__all__ = ["PlacementConfig", "LEGACY_SWITCHES"]

#: Deprecated boolean field -> the rule it switched (`False` disabled it).
LEGACY_SWITCHES: dict[str, str] = {
    "skip_small_convs": "SmallConv",
    "skip_gemv": "SmallOrGemv",
    "residual_add": "ResidualAdd",
    "pooling": "PoolingChain",
    "int8_elementwise": "Int8Elementwise",
    "concat_shared_scale": "ConcatSharedScale",
}

_REMOVED_IN = "0.3.0"


@dataclass
class PlacementConfig:
    """What the user controls about Q/DQ placement.

    Attributes:
        exclude_nodes: node names or regexes (matched against the whole name) kept in high precision.
        exclude_op_types: op types kept in high precision.
        keep_first_last: keep the first and the last weighted layer in high precision.
        skip_small_convs: deprecated; `disable_rules=("SmallConv",)` instead of False. Like the other
            deprecated booleans it is folded into `disable_rules` on construction and then reads None.
        skip_gemv: deprecated; `disable_rules=("SmallOrGemv",)` instead of False.
        residual_add: deprecated; `disable_rules=("ResidualAdd",)` instead of False.
        pooling: deprecated; `disable_rules=("PoolingChain",)` instead of False.
        int8_elementwise: deprecated; `disable_rules=("Int8Elementwise",)` instead of False.
        concat_shared_scale: deprecated; `disable_rules=("ConcatSharedScale",)` instead of False.
        batch_hint: the value assumed for symbolic dims when detecting matrix-vector products (1: the
            batch-1 engine profile, as ModelOpt's batch-1 calibration run sees it).
        enable_rules: registered rules to run that do not run by default (plugins' rules, for instance).
        disable_rules: registered rules not to run (`"SmallConv"`, `"ResidualAdd"`, ...).
    """

    exclude_nodes: Sequence[str] = ()
    exclude_op_types: Sequence[str] = ()
    keep_first_last: bool = False
    skip_small_convs: bool | None = None
    skip_gemv: bool | None = None
    residual_add: bool | None = None
    pooling: bool | None = None
    int8_elementwise: bool | None = None
    concat_shared_scale: bool | None = None
    batch_hint: int = 1
    enable_rules: tuple[str, ...] = ()
    disable_rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.exclude_nodes = _as_names(self.exclude_nodes)
        self.exclude_op_types = _as_names(self.exclude_op_types)
        self.enable_rules = _as_names(self.enable_rules)
        self.disable_rules = _as_names(self.disable_rules)
        legacy_off: list[str] = []
        for field_name, rule in LEGACY_SWITCHES.items():
            value = getattr(self, field_name)
            if value is None:
                continue
            value = bool(value)
            warnings.warn(_legacy_message(field_name, value, rule), DeprecationWarning, stacklevel=3)
            clash = self.disable_rules if value else self.enable_rules
            if rule in clash:
                other = "disable_rules" if value else "enable_rules"
                raise UsageError(
                    f"PlacementConfig({field_name}={value}) contradicts {other}={clash!r}; "
                    f"drop {field_name} (deprecated)"
                )
            if not value:
                legacy_off.append(rule)
            setattr(self, field_name, None)  # recorded as disable_rules from here on
        self.disable_rules = tuple(dict.fromkeys((*self.disable_rules, *legacy_off)))

    def validate(self) -> None:
        """Check the rule names and `batch_hint` (plan_qdq does; call it to fail before any work).

        Raises:
            UsageError: an unknown rule name (the message lists the registered rules), a rule both enabled
                and disabled, a rule that cannot be disabled, or a `batch_hint` below 1.
        """
        hint = self.batch_hint
        if isinstance(hint, bool) or not isinstance(hint, numbers.Integral) or hint < 1:
            raise UsageError(f"placement batch_hint must be a positive integer, got {self.batch_hint!r}")
        self._requests()

    def enabled_rules(self) -> tuple[str, ...]:
        """The rules `plan_qdq` runs: the defaults, plus `enable_rules`, minus `disable_rules`, in run order.

        Raises:
            UsageError: as `validate`.
        """
        self.validate()
        enable, disable = self._requests()
        return tuple(
            name
            for name in rule_names()
            if (name in enable or RULES.get(name).default) and name not in disable
        )

    def _requests(self) -> tuple[set[str], set[str]]:
        """(enabled names, disabled names), checked against the registry and made canonical."""
        enable = {_known(n, "enable_rules (--enable-rule)") for n in self.enable_rules}
        disable = {_known(n, "disable_rules (--disable-rule)") for n in self.disable_rules}
        for name in sorted(disable):
            if name in enable:
                raise UsageError(
                    f"placement rule {name!r} is in both enable_rules (--enable-rule) and disable_rules "
                    "(--disable-rule); keep one"
                )
            if not RULES.get(name).switchable:
                raise UsageError(
                    f"placement rule {name!r} in disable_rules (--disable-rule) cannot be disabled: it acts "
                    "only on its own option (exclude_nodes, exclude_op_types or keep_first_last); leave that "
                    "option empty instead"
                )
        return enable, disable


def _as_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """A tuple of names (one name given as a string counts as one name; JSON lists become tuples)."""
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _known(name: object, where: str) -> str:
    """The registered name for `name`, or a UsageError listing the registered rules."""
    if not isinstance(name, str) or name not in RULES:
        raise UsageError(
            f"placement rule {name!r} in {where} is not registered; choose from {', '.join(rule_names())} "
            "(a plugin's rules need --plugin MODULE)"
        )
    return RULES.canonical(name)


def _legacy_message(field_name: str, value: bool, rule: str) -> str:
    head = f"PlacementConfig({field_name}={value}) is deprecated and will be removed in trtq {_REMOVED_IN}; "
    if value:
        return head + f"{rule} runs by default (enable_rules=({rule!r},) names it explicitly)"
    return head + f"use disable_rules=({rule!r},) (--disable-rule {rule})"
