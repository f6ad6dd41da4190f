"""The hub's default consent policy, kept as data (``policy.json``) and stated in the README.

The JSON is the policy; this module only gives it types. Changing who may read what for which purpose is a
change to the data, reviewed like one, never a change to the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

_FILE = Path(__file__).with_name("policy.json")


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    effect: str  # permit | permit-if-consented | deny | permit-despite-deny
    says: str
    purposes: frozenset[str]
    explicit_purpose: bool = False
    roles: frozenset[str] = frozenset()
    max_token_seconds: int = 0
    labels_allowed: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()  # resource types it covers (empty: every type)

    def covers(self, purpose: str, role: str, rtype: str) -> bool:
        return ((not self.purposes or purpose in self.purposes) and (not self.roles or role in self.roles)
                and (not self.classes or rtype in self.classes))


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    rules: tuple[Rule, ...]
    sensitive_labels: frozenset[str]
    guardian_only_below: int
    guardian_and_child_below: int

    def rule_for(self, effect: str, purpose: str, role: str = "", rtype: str = "") -> Rule | None:
        """The first rule with this effect covering the purpose, the requester's role and the type (a rule
        that names no roles or types covers every one)."""
        return next((r for r in self.rules if r.effect == effect and r.covers(purpose, role, rtype)), None)

    @property
    def emergency(self) -> Rule:
        found = next((r for r in self.rules if r.effect == "permit-despite-deny"), None)
        if found is None:
            raise ValueError("the consent policy has no emergency rule")
        return found


def policy_from(data: dict[str, Any]) -> Policy:
    rules = tuple(Rule(id=r["id"], effect=r["effect"], says=r["says"], purposes=frozenset(r["purposes"]),
                       explicit_purpose=bool(r.get("explicit_purpose", False)), roles=frozenset(r.get("roles", ())),
                       max_token_seconds=int(r.get("max_token_seconds", 0)),
                       labels_allowed=frozenset(r.get("labels_allowed", ())), classes=frozenset(r.get("classes", ())))
                  for r in data["rules"])
    return Policy(version=data["version"], rules=rules,
                  sensitive_labels=frozenset(data["sensitive_labels"]["labels"]),
                  guardian_only_below=int(data["minors"]["guardian_only_below"]),
                  guardian_and_child_below=int(data["minors"]["guardian_and_child_below"]))


@cache
def default_policy() -> Policy:
    return policy_from(json.loads(_FILE.read_text(encoding="utf-8")))
