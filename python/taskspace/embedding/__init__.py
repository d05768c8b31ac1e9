"""The embedding layer: texts and outputs -> features -> statistics -> a task embedding.

* :mod:`taskspace.embedding.surrogate` — :class:`~taskspace.embedding.surrogate.Surrogate`, the fixed,
  deterministic function that turns (input, output) pairs into a task embedding (the Rust core does
  the arithmetic), and its additive statistics;
* :mod:`taskspace.embedding.task_embedding` — :class:`~taskspace.embedding.task_embedding.TaskEmbedding`,
  the vector with its name, kind, size and the surrogate's fingerprint;
* :mod:`taskspace.embedding.drift` — has a model's task changed? (a bootstrap over its answers).
"""
