"""From answers to numbers: ``parse`` (model answers -> typed results, failures kept),
``align`` (Levenshtein alignment, token normalisation), ``word_diagnosis`` (heard phones
against the canonical pronunciation, per word), ``metrics`` (PCC, Spearman, WER, PER,
PER-vs-accuracy, bootstrap intervals), ``mdd`` (TA/FR/FA/CD/DE), ``epoch_metrics`` (an epoch's
stored predictions -> ``metrics.json``). The bottom layer of speech evaluation: it imports
neither inference nor the evaluation run.
"""
