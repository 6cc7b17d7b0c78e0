"""How answers are decoded, decided once for every route: greedy, one beam, no penalties.

``evaluate`` decodes through ``model.generate`` (:mod:`~.generate`); ``assess`` and ``serve``
through the fast route (:mod:`~.fast_decode`), a plain argmax over the same logits. Both must
write the same answer. ``generate`` fills every setting not passed to it from the checkpoint's
``generation_config.json``, and released checkpoints ship settings that change greedy decoding:
Qwen2-Audio-7B-Instruct's ``repetition_penalty`` 1.1 (transformers applies it to greedy
decoding too, over the prompt's tokens as well: the canonical phones of the reference), or
sampling turned on. So the model's generation config is reduced to its token ids before any
answer is generated (:func:`greedy_only`), and ``generate`` gets the settings of
:func:`generate_settings`. What was set aside is reported as a note, never applied silently.

Under ``speech.prompt_reference=heard`` the MDD answer rewrites the scorer's heard phones, given
in its prompt. A decoder copying a long sequence can jump from one occurrence of a repeated
stretch to a later one (``HH IY`` ... ``HH IY``) and drop every word between: the demo's model,
trained on sentences of up to seven words, did so on a 19-word LibriVox sentence. Both routes
therefore put back any run of at least :data:`SKIP_RUN_PHONES` heard phones the answer left out
(:func:`restore_skipped_phones`), and say so in the answer (``restored``, ``model_raw``).
"""

from __future__ import annotations

from collections.abc import Sequence

# Kept from a checkpoint's generation config: which tokens end, pad and start an answer.
TOKEN_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
# Not decoding settings (bookkeeping, or limits our own max_new_tokens replaces).
_IGNORED = ("transformers_version", "max_length", "max_new_tokens", "_from_model_config", "chat_format")
# A run of this many heard phones missing from an MDD answer is a copy jump, not a deletion the
# model heard: the synthetic training corpus deletes single phones.
SKIP_RUN_PHONES = 3


def set_aside(config) -> dict:
    """The settings of a generation config that differ from transformers' defaults (token ids
    and bookkeeping left out): what would change our decoding if it were used."""
    from transformers import GenerationConfig

    defaults = GenerationConfig().to_dict()
    defaults.update(GenerationConfig._get_default_generation_params())
    out = {}
    for key, value in config.to_dict().items():
        if value is None or key in TOKEN_FIELDS or key in _IGNORED or key.startswith(("output_", "return_")):
            continue  # unset (None: transformers' default applies), or not a decoding setting
        default = defaults.get(key)
        if value != default and not (value in (None, False) and default in (None, False)):
            out[key] = value
    return out


def greedy_only(model) -> list[str]:
    """Replace ``model.generation_config`` by one holding only its token ids; returns notes
    naming what the checkpoint had set (empty when nothing was). Idempotent."""
    from transformers import GenerationConfig

    current = getattr(model, "generation_config", None)
    if current is None:
        return []
    extra = set_aside(current)
    if not extra:
        return []
    kept = {k: getattr(current, k, None) for k in TOKEN_FIELDS}
    model.generation_config = GenerationConfig(**{k: v for k, v in kept.items() if v is not None})
    notes = []
    if extra.get("do_sample"):
        sampling = {k: extra[k] for k in ("temperature", "top_k", "top_p") if k in extra}
        notes.append(
            f"the model's generation_config turns sampling on ({sampling or 'do_sample'}); ignored for "
            "evaluation: answers are decoded greedily"
        )
    others = {k: v for k, v in extra.items() if k not in ("do_sample", "temperature", "top_k", "top_p")}
    if others:
        notes.append(
            f"the model's generation_config sets {others}; not applied: evaluate, assess and serve decode "
            "greedily without them, so that every route writes the same answer"
        )
    return notes


def generate_settings(
    max_new_tokens: int,
    end_ids: Sequence[int],
    pad_id: int,
    suppress: Sequence[int],
    min_new_tokens: int | None = None,
) -> dict:
    """The keyword arguments of every ``model.generate`` call: greedy, one beam, no penalty."""
    return dict(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        use_cache=True,
        eos_token_id=list(end_ids),
        suppress_tokens=list(suppress),
        min_new_tokens=min_new_tokens,
        pad_token_id=pad_id,
    )


def restore_skipped_phones(answer, heard_phones: str | None):
    """``answer`` (a GeneratedAnswer of the MDD task) with the runs of ``heard_phones`` its phone
    transcript skipped put back (see the module doc); the answer itself when there are none, or
    when either of its transcripts is unreadable (then the parse error is reported as it is)."""
    import dataclasses

    from loralab.speech.data.targets import mdd_answer
    from loralab.speech.scoring.align import phone_tokens, restore_skips
    from loralab.speech.scoring.parse import parse_answer

    parsed = parse_answer("mdd", answer.raw)
    words, phones = parsed.values.get("word_transcript"), parsed.values.get("phoneme_transcript")
    if heard_phones is None or words is None or phones is None:
        return answer
    fixed, restored = restore_skips(phone_tokens(heard_phones), phone_tokens(phones), SKIP_RUN_PHONES)
    if not restored:
        return answer
    raw = mdd_answer(words, " ".join(fixed))
    return dataclasses.replace(answer, raw=raw, model_raw=answer.raw, restored=restored)
