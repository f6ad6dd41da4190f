"""Patient matching (issue 16): one person, one record across facilities.

Pure: no FastAPI, no pymongo, nothing from the hub outside this package (identifier systems come from
``adapters.normalize``). ``features`` reads a FHIR Patient once into a ``MatchRecord``; ``block_keys`` files
it under a few narrow keys; ``compare`` decides on one pair (deterministic identifier rules, then a
Fellegi-Sunter score weighed by a ``Model`` kept as data in ``model.json``).
"""

from fhir_hub.matching.blocking import block_keys
from fhir_hub.matching.compare import Comparison, compare
from fhir_hub.matching.fold import fold
from fhir_hub.matching.model import Model
from fhir_hub.matching.record import MatchRecord, features

__all__ = ["Comparison", "MatchRecord", "Model", "block_keys", "compare", "features", "fold"]
