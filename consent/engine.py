"""The consent decision on one resource for one requester: the default policy, then the person's consents.

Order of the rules (each stated in ``policy.json``):

1. The hub itself, and anything that is nobody's personal data (in no Patient compartment): permitted
   here, the token's scopes decide.
2. The resident (or their guardian) reading their own record: permitted, labels included.
3. Public-health purposes: denied (de-identified statistics are a later issue).
4. The facility that created the record (or that the resident addressed it to: a correction request's
   owner), for its own purposes (treatment, emergency, payment): permitted;
   so is a rule for a role (the hub's operator reads Patient records to keep one person one record).
5. Everyone else: the active privacy consents of every person whose compartment holds the resource. In one
   consent, a nested provision that applies is an exception to its parent, and a deny beats a permit at
   the same level; across consents, a deny beats a permit. A permit counts only if the provisions that
   decided name every sensitive label the resource carries, and, for purposes other than treatment, the
   purpose itself.
6. Emergency (purpose ETREAT with a reason, a clinician): what rule 5 refused is permitted, except
   sensitive labels the emergency rule does not list.

Provision criteria: a criterion left out matches anything. ``dataPeriod`` is read on the safe side: a
permit covers a resource whose clinical time lies wholly inside it, a deny one whose time overlaps it (or
has no clinical time at all). Pure: no FastAPI, no pymongo, no hub imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from consent.model import READ_ACTIONS, ConsentProblem, ConsentRecord, Provision, moment
from consent.policy import Policy


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks, and why: what the token says, with the caller's facility's Organization ids found for it."""

    kind: str  # hub | resident | facility (a hospital system, a clinician, the hub's operator)
    role: str  # hub | system | clinician | resident | operator (a system token without a facility)
    facility: str | None = None
    organizations: frozenset[str] = frozenset()  # Organization/x keys carrying the caller's facility code
    user: str | None = None  # fhirUser: Practitioner/x, PractitionerRole/y, RelatedPerson/z
    purpose: str = "TREAT"
    emergency_reason: str | None = None
    now: int = 0  # microseconds since the epoch: periods are judged at this moment


@dataclass(frozen=True, slots=True)
class Subject:
    """What a decision may look at: never the content, only the facts the store keeps beside each version
    (``fhir_hub/fhir/access_facts.py``)."""

    rtype: str
    rid: str
    patients: frozenset[str]  # the Patient compartments the resource is in
    labels: frozenset[str] = frozenset()  # meta.security as system|code
    facility: str | None = None  # the facility that created it, from meta.source
    codes: frozenset[str] = frozenset()  # system|code of its codings
    when: tuple[int, int] | None = None  # its clinical time, microseconds
    # the facility a resident addressed it to (a correction request's owner): it reads it as its own record
    addressee: str | None = None

    @property
    def key(self) -> str:
        return f"{self.rtype}/{self.rid}"


@dataclass(frozen=True, slots=True)
class Outcome:
    permitted: bool
    rule: str  # the policy rule that decided (or "consent" / "no-consent")
    because: str  # a sentence for people
    provisions: tuple[str, ...] = ()  # Consent/x#Consent.provision.provision[0] ... that decided
    emergency: bool = False  # permitted only by breaking the glass


@dataclass(frozen=True, slots=True)
class Person:
    """One person's consents (any status) and their birth date (who must agree to a child's consent)."""

    consents: tuple[ConsentRecord, ...] = ()
    birth_date: str | None = None
    # whether any consent is active: without one, rules 5 and 6 deny unless the glass is broken
    active: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "active", any(c.active for c in self.consents))


def policy_key(subject: Subject, requester: Requester) -> tuple[str, bool, bool]:
    """All of a subject ``by_policy`` looks at: its type, whether it is anyone's personal data, and whether
    the requester's facility created it (or is who the resident addressed it to). A gate judging thousands
    of resources decides each key once."""
    own = requester.facility is not None and requester.facility in (subject.facility, subject.addressee)
    return subject.rtype, bool(subject.patients), own


def by_policy(subject: Subject, requester: Requester, policy: Policy) -> Outcome | None:
    """The decision when the policy alone makes it (rules 1 to 4), without looking at anyone's consents;
    None when the person's consents decide. A facility reading its own records costs no consent look-up.
    Reads nothing of the subject but what ``policy_key`` gives."""
    if requester.kind == "hub":
        return Outcome(True, "hub", "the hub acting on its own behalf")
    if not subject.patients:
        return Outcome(True, "not-personal", "in no patient's compartment: the token's scopes decide")
    if requester.kind == "resident":
        return Outcome(True, "own-record", "a resident (or their guardian) reading their own record")
    purpose, role = requester.purpose, requester.role
    denied = policy.rule_for("deny", purpose, role, subject.rtype)
    if denied is not None:
        return Outcome(False, denied.id, denied.says)
    for rule in policy.rules:
        if rule.effect != "permit" or not rule.covers(purpose, role, subject.rtype):
            continue
        if rule.roles or policy_key(subject, requester)[2]:
            return Outcome(True, rule.id, rule.says)
    return None


def decide(subject: Subject, requester: Requester, consents: Sequence[Person], policy: Policy) -> Outcome:
    """``consents``: each person whose compartment holds the resource."""
    return by_policy(subject, requester, policy) or beyond_policy(subject, requester, consents, policy)


def beyond_policy(subject: Subject, requester: Requester, consents: Sequence[Person], policy: Policy) -> Outcome:
    """Rules 5 and 6, for what ``by_policy`` leaves open: the people's consents, then breaking the glass."""
    purpose = requester.purpose
    emergency = policy.emergency
    breaking_glass = breaks_glass(requester, policy)
    asked = "TREAT" if breaking_glass else purpose  # an emergency reads what treatment would need
    by_consent = _by_consents(subject, requester, asked, consents, policy)
    if by_consent.permitted or not breaking_glass:
        return by_consent
    hidden = (subject.labels & policy.sensitive_labels) - emergency.labels_allowed
    if hidden:
        return Outcome(False, emergency.id, "emergency access does not reach data labelled "
                       + ", ".join(sorted(hidden)), by_consent.provisions)
    return Outcome(True, emergency.id, f"emergency access: {requester.emergency_reason}", by_consent.provisions,
                   emergency=True)


def breaks_glass(requester: Requester, policy: Policy) -> bool:
    """Emergency access: a clinician with purpose ETREAT and a reason (rule 6)."""
    emergency = policy.emergency
    return (requester.purpose in emergency.purposes and requester.emergency_reason is not None
            and requester.role in emergency.roles)


def permitted_beyond_policy(subject: Subject, requester: Requester, consents: Sequence[Person], policy: Policy,
                            *, breaking_glass: bool) -> bool:
    """``beyond_policy(...).permitted`` without composing the explanation for the common case: someone
    without an active consent, when the glass is not broken, is denied (``_by_consents``)."""
    if not breaking_glass and not all(person.active for person in consents):
        return False
    return beyond_policy(subject, requester, consents, policy).permitted


def _by_consents(subject: Subject, requester: Requester, purpose: str, consents: Sequence[Person],
                 policy: Policy) -> Outcome:
    rule = policy.rule_for("permit-if-consented", purpose)
    if rule is None:
        return Outcome(False, "no-rule", f"the policy lets no one else read for purpose {purpose}")
    sensitive = subject.labels & policy.sensitive_labels
    permits: list[str] = []
    for person in consents:
        permitted = None
        unagreed = []
        for record in person.consents:
            if not record.active:
                continue
            if not agreed(record, person.birth_date, requester.now, policy):
                unagreed.append(record.key)
                continue
            for kind, path in _decisions(record.root, subject, requester, purpose):
                where = f"{record.key}#{path[-1].path}"
                if kind == "deny":
                    return Outcome(False, "consent", f"denied by {where}", (where,))
                named_labels = frozenset().union(*(p.labels for p in path))
                named_purposes = frozenset().union(*(p.purposes for p in path))
                if not sensitive <= named_labels or (rule.explicit_purpose and purpose not in named_purposes):
                    continue
                permitted = permitted or where
        if permitted is None:
            missing = (f"a permit naming the labels {', '.join(sorted(sensitive))}" if sensitive
                       else f"a permit naming purpose {purpose}" if rule.explicit_purpose else "an active permit")
            waiting = (f" Not yet agreed by whom the person's age requires: {', '.join(unagreed)}."
                       if unagreed else "")
            return Outcome(False, "no-consent", f"{rule.says} No consent gives {missing}.{waiting}", tuple(permits))
        permits.append(permitted)
    return Outcome(True, rule.id, f"permitted by {', '.join(permits)}", tuple(permits))


def agreed(record: ConsentRecord, birth_date: str | None, now: int, policy: Policy) -> bool:
    """Whether the people the person's age requires agreed to this consent, judged at ``now`` (a consent a
    guardian gave for a five-year-old needs the child's agreement too once they are seven, and the
    person's own from sixteen). An unknown birth date counts as an adult's."""
    guardian = any(ref.split("/")[-2:-1] == ["RelatedPerson"] for ref in record.agreed_by)
    person = any(ref.split("/")[-2:-1] == ["Patient"] for ref in record.agreed_by)
    age = age_at(birth_date, now)
    if age is not None and age < policy.guardian_only_below:
        return guardian
    if age is not None and age < policy.guardian_and_child_below:
        return guardian and person
    return person


def age_at(birth_date: str | None, now: int) -> int | None:
    """Completed years at ``now`` (microseconds); a year-only or year-month birth date counts from its
    last possible day, so a child is never taken as older than they may be."""
    if birth_date is None:
        return None
    try:
        born = moment(birth_date, upper=True)
    except ConsentProblem:
        return None
    born_at, at = datetime.fromtimestamp(born / 1e6, UTC), datetime.fromtimestamp(now / 1e6, UTC)
    return at.year - born_at.year - ((at.month, at.day) < (born_at.month, born_at.day))


def _decisions(provision: Provision, subject: Subject, requester: Requester, purpose: str
               ) -> list[tuple[str, tuple[Provision, ...]]]:
    """The decisions one provision tree gives: one deny, or the permits that apply (each with the path of
    provisions from the root to the one that decided); empty when it says nothing about this read."""
    if not _applies(provision, subject, requester, purpose):
        return []
    found = [(kind, (provision, *path)) for child in provision.provisions
             for kind, path in _decisions(child, subject, requester, purpose)]
    denies = [d for d in found if d[0] == "deny"]
    if denies:
        return denies[:1]
    if found:
        return found
    return [(provision.kind, (provision,))] if provision.kind is not None else []


def _applies(p: Provision, subject: Subject, requester: Requester, purpose: str) -> bool:
    if p.period is not None and not p.period.contains(requester.now):
        return False
    if p.actors and not any(_is_requester(a.reference, a.facility, requester) for a in p.actors):
        return False
    if p.actions and not p.actions & READ_ACTIONS:
        return False
    if p.purposes and purpose not in p.purposes:
        return False
    if p.classes and subject.rtype not in p.classes:
        return False
    if p.codes and not p.codes & subject.codes:
        return False
    if p.labels and not p.labels & subject.labels:
        return False
    if p.data and subject.key not in p.data:
        return False
    if p.data_period is not None:
        if subject.when is None:
            return p.kind == "deny"
        low, high = subject.when
        inside = p.data_period.overlaps(low, high) if p.kind == "deny" else p.data_period.holds(low, high)
        if not inside:
            return False
    return True


def _is_requester(reference: str | None, facility: str | None, requester: Requester) -> bool:
    if facility is not None:
        return facility == requester.facility
    if reference is None:
        return False
    short = "/".join(reference.split("/")[-2:])
    return short in requester.organizations or short == requester.user
