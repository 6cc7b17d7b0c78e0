"""Evaluation of the pronunciation system: batched generation, answer parsing, the paper's
metrics (PCC, WER, PER, MDD detection, Figure 5), per-epoch evaluation of a run with the
paper's Table 3/4 beside ours, and single-recording assessment.

Modules: ``parse`` (model answers -> typed results, failures kept), ``align`` (Levenshtein
alignment, token normalisation), ``metrics`` (PCC, Spearman, WER, PER, PER-vs-accuracy),
``mdd`` (TA/FR/FA/CD/DE), ``generate`` (left-padded batched greedy decoding), ``store``
(append-only predictions, resumable), ``scoring`` (predictions -> metrics.json), ``runner``
(``evaluate_run``, behind ``loralab evaluate``), ``tables`` and ``paper`` (Table 3/4),
``assess`` (one recording or a batch, per-word diagnosis, behind ``loralab assess``).
"""
