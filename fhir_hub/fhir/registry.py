"""Which resource types the hub serves, read off the ``fhir.resources.R4B`` models themselves.

The list is derived, never typed in, so the REST routes, the validation and the CapabilityStatement cannot
disagree about it. R4B models are used because fhir.resources ships no R4 (4.0.1) package; the handful of
R4-only types (the ``MedicinalProduct*`` family, ``EffectEvidenceSynthesis`` ...) are therefore answered as
unknown types.
"""

from __future__ import annotations

from functools import cache

from fhir.resources.R4B import fhirtypes, get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel

# Resources that the spec says have no RESTful endpoint of their own.
NOT_STORABLE = frozenset({"Parameters"})


@cache
def resource_types() -> tuple[str, ...]:
    """Every concrete R4B resource type that can be stored, sorted."""
    from fhir.resources.R4B.resource import Resource

    names = []
    for attr in dir(fhirtypes):
        if not attr.endswith("Type") or not attr[:1].isupper():
            continue
        name = attr[: -len("Type")]
        if name in ("Resource", "DomainResource") or name in NOT_STORABLE:
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
    return name in resource_type_set()


def model_class(name: str) -> type[FHIRAbstractModel]:
    """The R4B model for a known resource type (callers check ``is_resource_type`` first)."""
    return get_fhir_model_class(name)
