"""The priority queue between ingestion and processing (issue 18): jobs in MongoDB (``jobs.py``), claimed by
worker processes (``worker.py``) highest priority first."""
