"""From a model and recordings to its answers, used by evaluate, assess and serve: ``generate``
(left-padded batched greedy decoding), ``fast_decode`` (one recording on the KV cache, APA
constrained to its JSON template), ``decoding`` (the decoding settings both share), ``expected``
(expected scores read from the model's probabilities), ``reading_length`` (recordings too short
or too long for their sentence), ``recording_answers`` (``assess_items``: one recording or a
batch -> scores, transcripts and a per-word diagnosis, behind ``loralab assess`` and serve).
"""
