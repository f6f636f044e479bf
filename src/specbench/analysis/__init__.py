"""Analysis of finished runs: comparisons of specialists with generalists and paper tables.

Everything here reads runs back through :mod:`specbench.tracking` (plain ``RunRecord`` data
and an ``ArtifactReader`` for per-item tables) and never imports MLflow itself.

- ``stats``: bootstrap intervals, McNemar's and the paired bootstrap test, Benjamini-Hochberg, Pareto fronts;
- ``select``: which runs a comparison reads (``Selection``) and which run fills each cell (most samples);
- ``tables``: the long-form tables (metric matrix, deltas, efficiency, quantization, framework);
- ``render``: those tables as display tables, CSV, Markdown and LaTeX;
- ``figures``: heatmaps and Pareto plots;
- ``summary``: the sections and the HTML page of a compare run;
- ``compare``: a whole comparison (``specbench compare``): build, write, log;
- ``report``: paper tables declared in experiments/*.yaml (``specbench report``; the schema is
  ``specbench.registry.reports``).

Submodules are imported by name (``from specbench.analysis import compare``): pandas,
SciPy and matplotlib load only where a command needs them.
"""
