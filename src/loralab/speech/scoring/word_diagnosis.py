"""A per-word diagnosis of the phones a model heard against a sentence's canonical pronunciation.

Canonical pronunciation: CMUdict's first entry per word, stress stripped (a word heard as another
of its CMUdict entries is judged against that one, and is not wrong); a word CMUdict
lacks gets the letter-to-sound guess of :func:`loralab.speech.data.phones.guess_pronunciation`
and is marked ``guessed`` (said in the table and the JSON). The model's phone transcript is
aligned to the whole sentence's canonical phones (minimum edit distance); each canonical
phone then belongs to its word. A phone inserted at a word boundary is given to the word
before it (to the first word when inserted before everything).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loralab.speech.scoring.align import phone_tokens, slot_alignment, word_tokens


@dataclass
class PhoneError:
    kind: str  # substituted | deleted | inserted
    expected: str | None
    heard: str | None

    def describe(self) -> str:
        if self.kind == "substituted":
            return f"{self.expected}->{self.heard}"
        if self.kind == "deleted":
            return f"-{self.expected}"
        return f"+{self.heard}"


@dataclass
class WordDiagnosis:
    word: str
    canonical: list[str]
    heard: list[str]
    lexicon: str  # cmudict | guessed
    errors: list[PhoneError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def canonical_words(text: str) -> list[tuple[str, list[str], str]]:
    """(word, canonical phones stress stripped, 'cmudict' | 'guessed') per word of ``text``."""
    from loralab.speech.data.phones import pronunciation

    out = []
    for word in word_tokens(text):
        phones, known = pronunciation(word)
        out.append((word, phone_tokens(phones), "cmudict" if known else "guessed"))
    return out


def diagnose_words(text: str, heard_phones: str | None) -> list[WordDiagnosis]:
    """Per-word diagnosis of ``heard_phones`` against ``text``'s canonical pronunciation."""
    words = canonical_words(text)
    canonical = [p for _, phones, _ in words for p in phones]
    owner = [i for i, (_, phones, _) in enumerate(words) for _ in phones]
    result = [WordDiagnosis(w, phones, [], lex) for w, phones, lex in words]
    if heard_phones is None or not result:
        return result
    at, gaps = slot_alignment(canonical, phone_tokens(heard_phones))

    def gap_owner(g: int) -> int:
        # Gap g lies before canonical phone g: it belongs to the word of phone g-1 (the word
        # before the boundary), or to the first word for g == 0.
        return owner[g - 1] if g > 0 else (owner[0] if owner else 0)

    for g in range(len(canonical) + 1):
        if g > 0 and at[g - 1] is not None:
            result[owner[g - 1]].heard.append(at[g - 1])
        for h in gaps[g]:
            w = result[gap_owner(g)]
            w.heard.append(h)
            w.errors.append(PhoneError("inserted", None, h))
        if g < len(canonical):
            c, h = canonical[g], at[g]
            if h is None:
                result[owner[g]].errors.append(PhoneError("deleted", c, None))
            elif h != c:
                result[owner[g]].errors.append(PhoneError("substituted", c, h))
    return [_as_variant(w) for w in result]


def _as_variant(word: WordDiagnosis) -> WordDiagnosis:
    """``word`` judged against the CMUdict pronunciation its heard phones match, when that is not the
    canonical one: another dictionary pronunciation (RATHER said R AH DH ER) is no error."""
    from loralab.speech.data.phones import cmudict_pronunciations

    if word.ok or word.lexicon != "cmudict":
        return word
    for variant in cmudict_pronunciations(word.word)[1:]:
        if phone_tokens(variant) == word.heard:
            return WordDiagnosis(word.word, phone_tokens(variant), list(word.heard), word.lexicon)
    return word
