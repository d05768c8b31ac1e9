"""The space layer: a persistent collection of named task embeddings and what is asked of it.

* :mod:`taskspace.space.task_space` — :class:`~taskspace.space.task_space.TaskSpace`: add, nearest,
  select, duplicates, drift history;
* :mod:`taskspace.space.store` — its SQLite file.
"""
