"""The space layer: a persistent collection of named task embeddings and what is asked of it.

* :mod:`taskspace.space.task_space` — :class:`~taskspace.space.task_space.TaskSpace`: add, nearest,
  select, duplicates, drift history;
* :mod:`taskspace.space.selection` — :class:`~taskspace.space.selection.Selection`, what ``select``
  returns: the ranking weighed with costs, the choice and the reason;
* :mod:`taskspace.space.store` — its SQLite file.
"""
