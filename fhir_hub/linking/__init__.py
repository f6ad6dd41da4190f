"""Linking: turning the matching engine's decisions into one master Patient per person (issue 16).

The engine (``fhir_hub/matching``) says whether two records are one person; this package stores what it
says. Every Patient a facility sends is a **source** record: the hub never changes what the facility wrote,
but the commit pipeline's match step (``linker.py``) adds one element the hub owns, a ``Patient.link`` of
type ``refer`` to the person's **master** Patient, carrying the decision (rule, score, grade, author) as an
extension (``elements.py``). The master is a Patient the hub writes itself (tagged ``record-role|master``),
its content a pure function of its sources (``golden.py``): every identifier, the best-known demographics
with the source each came from, and a ``seealso`` link to each source. When a later record proves two
masters are one person, the newer master is redirected (``link`` of type ``replaced-by``) instead of
re-pointing the other facility's records, so undoing the merge is removing the redirect.

Because the link is stored in the source's own version, every decision is in that record's history (who,
when, which rule, which score), a derived collection (``store/patient_links.py``) answers "whose master is
this?" and "which records are this person?" in one indexed look-up, and crash repair recomputes it like the
search index.
"""
