"""The benchmark suite (``taskspace evaluate``): model identification, zero-shot prompt selection
against the zero-label baselines, task similarity, and the real-LLM experiment.

One module per job: ``data`` (the ``--data DIR`` tasks), ``metrics``, ``baselines``, ``encoders``,
``answers`` (probing and MTEs), ``identification``, ``prompts``, ``prompt_selection``,
``adaptive_probing``, ``families`` (task similarity), ``suite`` (runs them all), and for the real
LLMs ``llm_prompts`` (the prompts and their split), ``llm_serving`` (one ``serve-models`` process
per model), ``llm_probing``, ``llm_scoring`` and ``llm`` (``run``).
"""
