"""HL7 v2 (ER7) adapter: ADT A01/A03/A04/A08/A28/A31/A40, ORU^R01 and VXU^V04 -> FHIR R4 transaction
Bundles, one record per message, plus the ACK the ingest service answers with.

Parsing is hl7apy 1.3.5 (``find_groups=False``, TOLERANT validation) on a payload first normalised for what
senders really send (LF or CRLF, a byte-order mark, MLLP bytes, several messages); values are then read by
position with the message's own encoding characters. Why, and the hl7apy quirks met, are in ``er7.py`` and
``parse.py``; the mapping tables are data in ``tables/``.
"""

from adapters.hl7v2.ack import ack, acknowledgements
from adapters.hl7v2.adapter import Hl7v2Adapter, record_key
from adapters.hl7v2.er7 import split_messages

__all__ = ["Hl7v2Adapter", "ack", "acknowledgements", "record_key", "split_messages"]
