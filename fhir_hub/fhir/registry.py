"""Which resource types the hub serves: those of FHIR R4 that the ``fhir.resources.R4B`` models know.

The list is derived, never typed in, so the REST routes, the validation and the CapabilityStatement cannot
disagree about it. R4B models are used because fhir.resources ships no R4 (4.0.1) package; the handful of
R4-only types (the ``MedicinalProduct*`` family, ``EffectEvidenceSynthesis`` ...) are therefore answered as
unknown types, and so are the R4B-only ones (``Citation``, ``Ingredient``, ``SubscriptionTopic`` ...): the
hub speaks R4, which has none of them (issue 21: its CapabilityStatement listed them).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from fhir.resources.R4B import fhirtypes, get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel

# Resources that the spec says have no RESTful endpoint of their own.
NOT_STORABLE = frozenset({"Parameters"})


@cache
def r4_resource_types() -> frozenset[str]:
    """FHIR R4's resource types, from the official definitions in ``profiles/fhir-r4``: the Patient
    CompartmentDefinition names every one (in the compartment or not), all but Parameters."""
    path = resources.files("profiles") / "fhir-r4" / "compartmentdefinition-patient.json"
    return frozenset(item["code"] for item in json.loads(path.read_text(encoding="utf-8"))["resource"])


@cache
def resource_types() -> tuple[str, ...]:
    """Every concrete resource type that R4 has, the R4B models know and can be stored, sorted."""
    from fhir.resources.R4B.resource import Resource

    r4 = r4_resource_types()
    names = []
    for attr in dir(fhirtypes):
        if not attr.endswith("Type") or not attr[:1].isupper():
            continue
        name = attr[: -len("Type")]
        if name in ("Resource", "DomainResource") or name in NOT_STORABLE or name not in r4:
            continue
        try:
            cls = get_fhir_model_class(name)
        except (ValueError, ImportError):
            continue
        if isinstance(cls, type) and issubclass(cls, Resource) and cls.__resource_type__ == name:
            names.append(name)
    return tuple(sorted(names))


@cache
def resource_type_set() -> frozenset[str]:
    return frozenset(resource_types())


def is_resource_type(name: str) -> bool:
    """A type the hub serves and stores."""
    return name in resource_type_set()


def is_validatable_type(name: str) -> bool:
    """A type the validator judges: those the hub stores, and those with no endpoint of their own (a
    Parameters is still a resource with rules, and HL7's validator cases check some)."""
    return is_resource_type(name) or name in NOT_STORABLE


def model_class(name: str) -> type[FHIRAbstractModel]:
    """The R4B model for a known resource type (callers check ``is_resource_type`` first)."""
    return get_fhir_model_class(name)
