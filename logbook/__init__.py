"""logbook: an open-training logbook. Wrap any training command, record every attempt to Parquet.

The library is the product; the `logbook` command is a thin layer over it. Nothing happens at import.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
