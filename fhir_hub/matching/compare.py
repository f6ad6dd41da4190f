"""``compare``: the decision on one pair of records, deterministic rules first, then a Fellegi-Sunter score.

Order of the rules (issue 16):
1. Two different personal IDs (CCCD) never link automatically: "apart", whatever the score.
2. The same personal ID links ("cccd", certain), unless it disagrees with either record's birth year or gender
   (4th digit = century and gender, 5th-6th = year): then it is not trusted on its own, "cccd-conflict",
   "review" at most.
3. The same social insurance number (BHXH, the last 10 characters of any BHYT card) or the same MA_BN at the
   same facility links ("bhxh" / "ma-bn", certain), unless the demographic score is below the model's veto
   (a relative's card, a reused number): then "review".
4. Everyone else: the sum of the field weights (bits) against the two thresholds, unless a doubt holds the
   pair back from an automatic link: a name, birth year or gender that disagrees outright (relatives share
   everything else), or a common name and a birth date with nothing else agreeing (namesakes). Twins and
   namesakes without any other agreement stay apart whatever the score (``_score`` says why).

Symmetric by construction: every field outcome is a symmetric function of the two records and the weights
are added in one fixed order, so ``compare(a, b)`` and ``compare(b, a)`` give the same float (a tested
property). The hot path does dict look-ups, string equality and a few slices; the reasons are short strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from fhir_hub.matching.model import Model, NameTable
from fhir_hub.matching.record import MatchRecord
from fhir_hub.matching.similarity import jaccard, one_edit

_DOUBTS = {label: f"{label} differ: never linked automatically"
           for label in ("family names", "given names", "middle names", "birth years", "genders")}
Decision = Literal["link", "review", "apart"]
Grade = Literal["certain", "probable", "possible"]


@dataclass(frozen=True)
class Comparison:
    score: float                   # bits; the demographic score even when a rule decided
    decision: Decision
    grade: Grade | None            # for $match: certain, probable (>= upper), possible (review band)
    rule: str                      # "cccd", "cccd-conflict", "bhxh", "ma-bn" or "probabilistic"
    reasons: tuple[str, ...]       # for the audit trail and the reviewer


def compare(a: MatchRecord, b: MatchRecord, model: Model | None = None) -> Comparison:
    """Whether ``a`` and ``b`` are one person: a decision, a grade, the rule that decided and why."""
    model = model or Model.default()
    score, reasons, doubts, apart = _score(a, b, model)
    if a.cccd and b.cccd:
        if a.cccd != b.cccd:
            return Comparison(score, "apart", None, "cccd", ("different personal IDs", *reasons))
        problems = a.cccd_problems + b.cccd_problems
        if problems:
            return Comparison(score, "review", "possible", "cccd-conflict",
                              ("same personal ID, but it disagrees with the record", *sorted(set(problems)),
                               *reasons))
        return Comparison(score, "link", "certain", "cccd", ("same personal ID", *reasons))
    for rule, shared, label in (("bhxh", not a.bhxh.isdisjoint(b.bhxh), "social insurance number"),
                                ("ma-bn", not a.local_ids.isdisjoint(b.local_ids), "patient number at one facility")):
        if shared:
            if score < model.veto:
                return Comparison(score, "review", "possible", rule,
                                  (f"same {label}, but the demographics disagree", *reasons))
            return Comparison(score, "link", "certain", rule, (f"same {label}", *reasons))
    if apart:
        return Comparison(score, "apart", None, "probabilistic", (*reasons, *doubts))
    if score >= model.upper and not doubts:
        return Comparison(score, "link", "certain" if score >= model.certain else "probable", "probabilistic",
                          reasons)
    if score >= model.lower:
        return Comparison(score, "review", "possible", "probabilistic", (*reasons, *doubts))
    return Comparison(score, "apart", None, "probabilistic", (*reasons, *doubts))


def _score(a: MatchRecord, b: MatchRecord, model: Model) -> tuple[float, tuple[str, ...], tuple[str, ...], bool]:
    """(bits, reasons, doubts, apart whatever the score) over every field.

    A doubt keeps a pair off the automatic links whatever its score: a family, given or middle name, a birth
    year or a gender that disagrees outright (not a typo, a variant or a swap) is what parents and children,
    siblings, twins and spouses show while sharing surname, phone, ward and address, evidence the score adds
    up as if it were independent. So with a doubt the shared contact details count nothing (the household
    explains them), and twins (same birth date, different given names) stay apart. A common name and a birth
    date alone are a doubt too: the commonest names ("Nguyễn Văn Hùng") share a birth date in any city-sized
    population, so unless the name weighs ``model.rare_name`` bits a link needs one more agreement (ward,
    phone or address). Such a pair is not worth a reviewer's time, and stays apart, when the ward, phone or
    address disagree (a namesake is likelier than a move) or only a birth year or month is known; a reviewer
    sees it when those details are missing. A rarer name with only a birth year, and nothing else agreeing
    while something disagrees, goes to review."""
    reasons: list[str] = []
    score, family_level, given_level, middle_level = _names(a, b, model, reasons)
    name_weight = score
    birth_level, weight = _birth(a, b, model, reasons)
    score += weight
    levels = model.levels
    gender_level = ""
    if a.gender in ("male", "female") and b.gender in ("male", "female"):
        gender_level = "exact" if a.gender == b.gender else "disagree"
        score += _add(reasons, "gender", gender_level, levels["gender"][gender_level])
    doubts = tuple(_DOUBTS[label] for label, level in
                   (("family names", family_level), ("given names", given_level), ("middle names", middle_level),
                    ("birth years", birth_level), ("genders", gender_level))
                   if level == "disagree" or level == "similar" or level == "partial swap")
    contact, agreeing, disagreeing = _contact(a, b, model, reasons, household=not doubts)
    score += contact
    contradicted = disagreeing and not agreeing
    weak = False
    if not agreeing and name_weight < model.rare_name:
        doubts = (*doubts, "only a common name and the birth date agree: never linked automatically")
        weak = contradicted or birth_level not in ("exact", "swap")
    elif contradicted and birth_level == "year_only":
        doubts = (*doubts, "only the name and a birth year agree: never linked automatically")
    if a.bhxh and b.bhxh and a.bhxh.isdisjoint(b.bhxh):
        score += _add(reasons, "social insurance number", "disagree", levels["bhxh"]["disagree"])
    if a.local_ids and b.local_ids and a.local_ids.isdisjoint(b.local_ids) and \
            {i.partition("|")[0] for i in a.local_ids} & {i.partition("|")[0] for i in b.local_ids}:
        score += _add(reasons, "patient number at one facility", "disagree", levels["ma_bn"]["disagree"])
    twins = given_level == "disagree" and birth_level in ("exact", "swap")
    if twins:
        doubts = (*doubts, "same birth date, different given names: twins")
    return score, tuple(reasons), doubts, twins or weak


def _add(reasons: list[str], field: str, level: str, weight: float) -> float:
    reasons.append(_reason(field, level, weight))
    return weight


@lru_cache(maxsize=4096)
def _reason(field: str, level: str, weight: float) -> str:
    """One reason's text; cached because the same few hundred recur (formatting a float is the dearest step
    of a comparison, measured: 13% of its time)."""
    return f"{field}: {level} ({weight:+.1f})"


def _slip(x: str, y: str, table: NameTable) -> str:
    """"typo" for a one-letter slip, "similar" when both are names the table knows (Quân/Tuấn, Hùng/Dũng:
    as likely twins or namesakes as a slip, so never linked automatically), "disagree" otherwise. In a
    name under 4 letters a slip counts only when one of the two is no known name (Hy for Huy)."""
    known = x in table.known and y in table.known
    if not one_edit(x, y, short=not known):
        return "disagree"
    return "similar" if known else "typo"


def _names(a: MatchRecord, b: MatchRecord, model: Model, reasons: list[str]) -> tuple[float, str, str, str]:
    """(weight, family, given and middle levels) of family, given and middle names, with regional variants, typos,
    a middle/given swap, and the same words in another order; a common name's agreement weighs little, a
    rare one's much (frequency tables), and the same name words at most what the whole name's share says
    (``_whole_name``)."""
    family_level = given_level = ""
    family = given = middle = 0.0
    if a.family and b.family:
        family_level, family = (_agreement(a.family, b.family, a.family_group == b.family_group, model.family, model)
                                or _slipped("family", a.family, b.family, model.family, model))
    swapped = False
    if a.given and b.given:
        agreed = _agreement(a.given, b.given, a.given_group == b.given_group, model.given, model)
        if agreed is not None:
            given_level, given = agreed
        elif (a.given in b.middle and (b.given in a.middle or not a.middle)) or (b.given in a.middle and not b.middle):
            # middle and given names swapped ("Văn An" / "An Văn"); with one middle name dropped ("Kiệt Văn" /
            # "Kiệt") it is a doubt: a twin may be named after the other's middle name ("Minh Thành" / "Minh")
            swapped = True
            given_level = "swap" if a.given in b.middle and b.given in a.middle else "partial swap"
            given = min(model.given.agree(a.given), model.given.agree(b.given)) - model.swap_penalty
        else:
            given_level, given = _slipped("given", a.given, b.given, model.given, model)
    if (family_level == "disagree" or given_level == "disagree") and a.name_bag == b.name_bag:
        weight = _reordered(a.name_bag, model)
        reasons.append(f"name: same words in another order ({weight:+.1f})")
        return _whole_name(a, b, weight, model, reasons), "reordered", "reordered", "reordered"
    middle_level = ""
    if a.middle and b.middle and not swapped:
        if a.middle == b.middle or set(a.middle) == set(b.middle):
            middle_level = "exact"
            middle = _add(reasons, "middle name", "exact", max(model.middle.agree(m) for m in a.middle))
        elif not (set(a.middle) <= set(b.middle) or set(b.middle) <= set(a.middle)):
            x, y = " ".join(a.middle), " ".join(b.middle)
            if not one_edit(x, y):
                middle_level = "disagree"
                middle = _add(reasons, "middle name", "disagree", model.levels["middle"]["disagree"])
            elif _real_name(x, model) and _real_name(y, model):
                middle_level = "similar"  # Minh Hùng / Minh Dũng: brothers as likely as a slip (as _slip)
                reasons.append("middle name: similar (+0.0)")
    if family_level:
        reasons.append(f"family name: {family_level} ({family:+.1f})")
    if given_level:
        reasons.append(f"given name: {given_level} ({given:+.1f})")
    return _whole_name(a, b, family + given + middle, model, reasons), family_level, given_level, middle_level


def _whole_name(a: MatchRecord, b: MatchRecord, weight: float, model: Model, reasons: list[str]) -> float:
    """At most what the whole name's frequency says, when both records carry the same name words.

    The parts' weights add up as if family, middle and given names were chosen independently; they are not
    (Văn and Thị go with genders, fashions with generations, and the commonest combinations are given far
    more often than their parts predict), so at city scale a whole name can be common while each part is
    moderately rare: on the synthetic 100,000 people "Nguyễn Mỹ Ngọc" weighs 13.8 bits by its parts (1 in
    18,000) while 1 record in 2,000 carries it, 10.6 bits (``Model.refit`` counts whole names over the hub's
    records)."""
    if not a.full_name or a.full_name != b.full_name:
        return weight
    whole = model.full_name.weights.get(a.full_name)
    if whole is None or whole >= weight:
        return weight
    reasons.append(_reason("full name", "common", whole))
    return whole


def _real_name(name: str, model: Model) -> bool:
    """Whether a middle-name word is a name in use (compound names swap given and middle names)."""
    return name in model.middle.known or name in model.given.known


def _agreement(x: str, y: str, same_group: bool, table: NameTable, model: Model) -> tuple[str, float] | None:
    """One name part's level and weight when the two agree, exactly or as regional variants (Huỳnh/Hoàng);
    None when they do not."""
    if x == y:
        return "exact", table.agree(x)
    if same_group:
        return "variant", min(table.agree(x), table.agree(y)) - model.variant_penalty
    return None


def _slipped(part: str, x: str, y: str, table: NameTable, model: Model) -> tuple[str, float]:
    """One name part's level and weight when the two differ: a slip (typo, similar) or a disagreement."""
    level = _slip(x, y, table)
    return level, model.levels[part]["disagree" if level == "disagree" else "typo"]


def _reordered(bag: tuple[str, ...], model: Model) -> float:
    """Agreement of two names made of the same words in another order (given name first, family name in the
    given field): the likeliest surname among the words weighs as the family name, the rarest other word as
    the given name. A function of the word bag alone, hence symmetric."""
    frequencies = model.family.frequencies
    surname = max(bag, key=lambda w: (frequencies.get(w, 0.0), w))
    others = [w for w in bag if w != surname]
    given = max((model.given.agree(w) for w in others), default=0.0)
    return model.family.agree(surname) + given - model.reorder_penalty


def _placeholder(month: int | None, day: int | None) -> bool:
    """01/01 is what many registrations hold when only the year is known: it is no evidence of a date."""
    return month == 1 and day == 1


def _birth(a: MatchRecord, b: MatchRecord, model: Model, reasons: list[str]) -> tuple[str, float]:
    """(level, weight) of the birth dates, allowing for a year-only date, a 01/01 placeholder, a day/month
    swap, a typo in the year, a few days' error across New Year."""
    if a.birth_year is None or b.birth_year is None:
        return "", 0.0
    full_a = a.birth_day is not None and not _placeholder(a.birth_month, a.birth_day)
    full_b = b.birth_day is not None and not _placeholder(b.birth_month, b.birth_day)
    if a.birth_year == b.birth_year:
        if full_a and full_b:
            if a.birth_month == b.birth_month:
                level = "exact" if a.birth_day == b.birth_day else "year_month"
            elif a.birth_month == b.birth_day and a.birth_day == b.birth_month:
                level = "swap"
            else:
                level = "year"
        elif a.birth_month and b.birth_month and a.birth_month != b.birth_month \
                and not _placeholder(a.birth_month, a.birth_day) and not _placeholder(b.birth_month, b.birth_day):
            level = "year"
        else:
            level = "year_only"
    elif full_a and full_b and (
            (a.birth_month == b.birth_month and a.birth_day == b.birth_day and _year_typo(a.birth_year, b.birth_year))
            or _new_year(a, b) or _new_year(b, a)):
        level = "near"
    else:
        level = "disagree"
    return level, _add(reasons, "birth date", level, model.levels["birth"][level])


def _new_year(a: MatchRecord, b: MatchRecord) -> bool:
    """``a`` in the last days of December, ``b`` in the first days of the next January."""
    return (b.birth_year == (a.birth_year or 0) + 1 and a.birth_month == 12 and b.birth_month == 1
            and (a.birth_day or 0) >= 20 and (b.birth_day or 99) <= 12)


def _year_typo(x: int, y: int) -> bool:
    """One digit wrong or two neighbouring digits swapped (1985/1986, 1985/1958)."""
    sx, sy = str(x), str(y)
    return one_edit(sx, sy) or sum(c != d for c, d in zip(sx, sy, strict=False)) == 1


def _same_ward(a: MatchRecord, b: MatchRecord) -> bool | None:
    """Codes when both have one (``ward`` is then the code), else folded names; None when unknown."""
    if a.ward and b.ward and a.ward != a.ward_name and b.ward != b.ward_name:
        return a.ward == b.ward
    if a.ward_name and b.ward_name:
        return a.ward_name == b.ward_name
    return None


def _contact(a: MatchRecord, b: MatchRecord, model: Model, reasons: list[str], *,
             household: bool) -> tuple[float, bool, bool]:
    """(weight, whether any agrees, whether any disagrees) of ward, phone and address (a partial address
    agreement adds its weight but corroborates nothing: many people live on Nguyễn Văn Linh).

    Their agreements say "same household" more than "same person", so together they count at most
    ``contact_cap`` bits, and nothing when ``household`` is false (the names or the birth year already say
    these are two members of one household); disagreements always count. The same ward with addresses that
    disagree ("elsewhere") counts nothing either way: a namesake in the ward shows it as often as a person
    who moved within it (measured at 100,000 people with the hand-set model: false links 79 -> 40)."""
    levels = model.levels
    positive = negative = 0.0
    address = _address(a, b) if a.address_set and b.address_set else None
    same_ward = _same_ward(a, b)
    if same_ward is not None:
        # the ward is part of the address: one ward and another street is a neighbour more than a move
        level = ("elsewhere" if address == "disagree" else "exact") if same_ward else "disagree"
        weight = _add(reasons, "ward", level, levels["ward"][level])
        positive, negative = (positive + weight, negative) if weight > 0 else (positive, negative + weight)
    if a.phones and b.phones:
        level = "disagree" if a.phones.isdisjoint(b.phones) else "exact"
        weight = _add(reasons, "phone", level, levels["phone"][level])
        positive, negative = (positive + weight, negative) if weight > 0 else (positive, negative + weight)
    agrees = positive > 0
    if address is not None:
        level = address
        weight = _add(reasons, "address", level, levels["address"][level])
        positive, negative = (positive + weight, negative) if weight > 0 else (positive, negative + weight)
        agrees = agrees or level == "exact"
    disagrees = negative < 0
    cap = model.contact_cap if household else 0.0
    if positive > cap:
        reasons.append(f"household evidence capped at {cap:+.1f}")
        positive = cap
    return positive + negative, agrees, disagrees


def _address(a: MatchRecord, b: MatchRecord) -> str:
    """"exact": the same street words and house number; "partial": the same street, a house number missing
    on one side; "disagree": another street, or another house on the same street (a neighbour)."""
    if jaccard(a.address_set, b.address_set) < 0.7:
        return "disagree"
    if a.house and b.house:
        return "exact" if a.house == b.house else "disagree"
    return "partial"
