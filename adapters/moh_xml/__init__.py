"""MoH XML export (QĐ 130/4750/3176, and QĐ 4210 names) -> FHIR R4 records. See ``adapter.py``."""

from adapters.moh_xml.adapter import MohXmlAdapter

__all__ = ["MohXmlAdapter"]
