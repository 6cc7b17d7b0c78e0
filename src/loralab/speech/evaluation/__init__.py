"""The evaluation run of a speech training run (``loralab evaluate``): ``runner``
(``evaluate_run``: each selected checkpoint's predictions, then its ``metrics.json`` and the
tables), ``store`` (append-only predictions, resumable), ``eval_lock`` (one evaluation at a time
per folder), ``fingerprint`` (what a prediction was made from, so stale ones are redone).

Answers come from :mod:`loralab.speech.inference`, their scores from
:mod:`loralab.speech.scoring`, the tables from :mod:`loralab.speech.reports`.
"""
