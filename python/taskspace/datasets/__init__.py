"""Datasets: the small built-in ones the demo and the docs use, and the files users bring.

* :mod:`taskspace.datasets.builtin` — labelled sets written for taskspace (no download);
* :mod:`taskspace.datasets.files` — reading labelled datasets from JSONL, CSV or Parquet files,
  probe texts, and every JSON Lines file the package reads (one reader, one error format).
"""
