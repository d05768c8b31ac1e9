"""The search layer: cosine similarity of task embeddings, exact and approximate.

* :mod:`taskspace.search.cosine` — all-pairs cosine, fused top-k and threshold search (Rust kernels);
* :mod:`taskspace.search.index` — :class:`~taskspace.search.index.Index`, an HNSW index over hnswlib.
"""
