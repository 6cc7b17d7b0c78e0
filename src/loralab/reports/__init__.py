"""Reports over run directories: ``loralab status`` and ``loralab compare``.

* :func:`loralab.reports.status.build_status` (run dir -> :class:`RunStatus`, nothing written),
  :func:`loralab.reports.status_report.status_report` (also writes ``status.md`` + ``plots/``).
* :func:`loralab.reports.compare.compare` (runs, config files, preset names -> table entries).
* :mod:`loralab.reports.plots`: figure functions returning matplotlib Figures.
"""
