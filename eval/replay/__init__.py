"""Visual episode replay: ``python -m eval.replay --results FILE --split SPLIT --out replay.html``.

One self-contained HTML page (no server, no network: scripts, styles and images are inside it) shows, for
the chosen episodes of a results file, the top-down map of the house (floor by floor) with the reference and
the walked path, a step control, the agent's view at each step where images exist, and the episode's metrics;
an index lists every episode with its metrics, sortable, with a filter for failures.

Results files replay as they are (the submission format). The extended format adds to an entry what the agent
computed, which the page then shows too::

    {"instr_id": ..., "trajectory": [[viewpoint, heading, elevation], ...],
     "instruction_tokens": ["<BOS>", "walk", ...],            # the tokens the agent read
     "decisions": [{"at": 0,                                  # the trajectory entry where it decided
                    "attention": [0.01, 0.3, ...],            # over instruction_tokens
                    "stop": 0.02,                             # probability of STOP
                    "candidates": [{"viewpoint": vp, "score": 0.9}, ...],
                    "action": 1}, ...]}                       # 0 STOP, k candidate k

``python -m agents.train --details``, ``python -m agents.evaluate --details`` and
``python -m agents.baselines --details`` write it (``*.details.json`` beside the results file).

Modules: :mod:`~eval.replay.episodes` (what an episode shows, images included), :mod:`~eval.replay.page`
(the HTML, its script and styles), :mod:`~eval.replay.figure` (``--png``: one map per episode for papers).
"""
