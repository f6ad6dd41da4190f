"""Risk rules of issue 18 ("Priority records") as data, and a pure scorer: who gets a complete record first.

``rules.json`` holds the rules (versioned, each with a weight and a source); ``facts_from_resources`` reads what
they need from a person's FHIR resources; ``assess`` scores those facts on a given day and says which rules
held and on what evidence; ``priority`` turns that into the queue's order and ``next_change`` says when the
score moves with no new data (a 60th birthday). Pure: the hub wires it into its priority queue.
"""

from profiles.risk.facts import Diagnosis, Household, PersonFacts, Span, facts_from_resources, span
from profiles.risk.rules import Criterion, Rule, Rules, default_rules, rules_from
from profiles.risk.score import Assessment, Evidence, Hit, assess, birthday, next_change, priority

__all__ = [
    "Assessment", "Criterion", "Diagnosis", "Evidence", "Hit", "Household", "PersonFacts", "Rule", "Rules", "Span",
    "assess", "birthday", "default_rules", "facts_from_resources", "next_change", "priority", "rules_from", "span",
]
