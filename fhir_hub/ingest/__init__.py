"""Ingestion of what facilities send: archive, map (``adapters``), commit through the one write path."""
