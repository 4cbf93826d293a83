"""The revisions of the output schema, oldest first (``0001_baseline.py``, ``0002_comments.py``, ...)."""
