"""The benchmark suite (``taskspace evaluate``): model identification, zero-shot prompt selection
against the zero-label baselines, task similarity, and the real-LLM experiment.
"""
