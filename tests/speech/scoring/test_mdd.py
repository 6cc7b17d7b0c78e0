"""MDD counts: a hand-worked example hitting TA, FR, FA, CD, DE (insertions and deletions on
both sides, stress stripped); hand-worked examples of each way the two conventions differ;
and the default convention checked against an independent re-implementation of the public
scoring scripts (cageyoko/CTC-Attention-Mispronunciation) over generated cases."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from loralab.speech.scoring.mdd import MddCounts, mdd_counts, mdd_metrics

# Canonical (with stress digits, as annotated), then what the annotators heard, then the model:
#  pos  canonical  human        predicted   category
#   0   B          B            B           TA
#   1   AA1        AE  (sub)    AE          CD
#   2   K          K            K           TA
#   3   S          -   (del)    -           CD  (deletion diagnosed)
#   4   T          T            T           TA
#   5   IH0        IY  (sub)    IH          FA
#   6   L          L            L           TA
#  gap             +AH (ins)    +AH         CD  (insertion diagnosed)
#   7   Z          Z            Z           TA
#   8   M          M            M           TA
#  gap             +N  (ins)    (none)      FA  (insertion missed)
#   9   OW0        OW           OW          TA
#  10   P          P            B           FR
#  11   EH1        AE  (sub)    IH          DE
#  12   R          R            R           TA
#  end             (none)       +D          strict: FR (spurious insertion); reference: not scored
CANONICAL = "B AA1 K S T IH0 L Z M OW0 P EH1 R"
HUMAN = "B AE K T IY L AH Z M N OW P AE R"
PREDICTED = "b ae1 k t ih l ah z m ow b ih r d"


def _tuple(c: MddCounts) -> tuple[int, int, int, int, int]:
    return (c.ta, c.fr, c.fa, c.cd, c.de)


def test_hand_worked_example_every_category():
    c = mdd_counts(CANONICAL, HUMAN, PREDICTED, convention="strict")
    assert _tuple(c) == (8, 2, 2, 3, 1)
    assert c.tr == 4
    assert c.precision == pytest.approx(4 / 6)
    assert c.recall == pytest.approx(4 / 6)
    assert c.f1 == pytest.approx(4 / 6)
    assert c.diagnosis_accuracy == pytest.approx(3 / 4)
    # The reference convention never visits the final +D (the human inserted nothing there).
    ref = mdd_counts(CANONICAL, HUMAN, PREDICTED)
    assert _tuple(ref) == (8, 1, 2, 3, 1)
    assert ref.precision == pytest.approx(4 / 5) and ref.recall == pytest.approx(4 / 6)


@pytest.mark.parametrize("convention", ["reference", "strict"])
def test_perfect_and_silent_systems(convention):
    perfect = mdd_counts(CANONICAL, HUMAN, HUMAN, convention=convention)
    assert (perfect.fr, perfect.fa, perfect.de) == (0, 0, 0)
    assert perfect.cd == 6 and perfect.ta == 9
    assert perfect.precision == perfect.recall == perfect.diagnosis_accuracy == 1.0
    # A system that always says the canonical phones accepts everything: every error is FA.
    accept_all = mdd_counts(CANONICAL, HUMAN, CANONICAL, convention=convention)
    assert (accept_all.ta, accept_all.fr, accept_all.fa, accept_all.tr) == (9, 0, 6, 0)
    assert math.isnan(accept_all.precision) and accept_all.recall == 0.0


def test_metrics_sum_counts_and_skip_failures():
    out = mdd_metrics(
        [CANONICAL, CANONICAL, "AH"], [HUMAN, HUMAN, "AH"], [PREDICTED, HUMAN, None], convention="strict"
    )
    total = MddCounts(8, 2, 2, 3, 1) + MddCounts(9, 0, 0, 6, 0)
    assert (out["ta"], out["fr"], out["fa"], out["cd"], out["de"]) == (17, 2, 2, 9, 1)
    assert out["precision"] == pytest.approx(total.tr / (total.tr + total.fr))
    assert out["recall"] == pytest.approx(10 / 12)
    assert out["n"] == 2 and out["failed"] == 1 and out["parse_rate"] == pytest.approx(2 / 3)
    assert out["convention"] == "strict"
    ref = mdd_metrics([CANONICAL, CANONICAL, "AH"], [HUMAN, HUMAN, "AH"], [PREDICTED, HUMAN, None])
    assert ref["convention"] == "reference"
    assert (ref["ta"], ref["fr"], ref["fa"], ref["cd"], ref["de"]) == (17, 1, 2, 9, 1)
    assert ref["precision"] == pytest.approx(10 / 11)


def test_summary_and_table3_name_the_convention(tmp_path):
    from loralab.speech.reports.tables import write_tables
    from loralab.speech.scoring.epoch_metrics import summary_row

    args = ([CANONICAL], [HUMAN], [PREDICTED])
    mdd = {
        "parse_rate": 1.0,
        "wer": {"wer": 0.1},
        "per": {"per": 0.2},
        "detection": mdd_metrics(*args, convention="strict"),
        "detection_reference": mdd_metrics(*args),
    }
    row = summary_row({"mdd": mdd})
    assert row["precision"] == pytest.approx(4 / 6) and row["precision_reference"] == pytest.approx(4 / 5)
    assert row["f1_reference"] == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))
    write_tables(tmp_path, {1: {"n_utterances": 1, "mdd": mdd, "summary": row}}, strategy="lora", title="t")
    assert "MDD scored with the strict convention" in (tmp_path / "table3.md").read_text()
    # A metrics.json written before the convention was recorded was scored the strict way.
    old = {"n_utterances": 1, "mdd": {"detection": {"f1": 0.5}}, "summary": row}
    new = {"n_utterances": 1, "mdd": {"detection": mdd["detection_reference"]}, "summary": row}
    write_tables(tmp_path, {1: old, 2: new}, strategy="lora", title="t")
    table = (tmp_path / "table3.md").read_text()
    assert "reference for epoch(s) 2; strict for epoch(s) 1" in table


# --- The four departures of the strict convention from the reference (issue 18) ---------


def test_departure_1_predicted_insertion_where_the_human_inserted_nothing():
    # K AE T, said right; the model adds an S at the end. Strict: that gap is one FR.
    # Reference: the human<->predicted alignment calls S an insertion, and it is never scored.
    args = ("K AE T", "K AE T", "K AE T S")
    assert _tuple(mdd_counts(*args)) == (3, 0, 0, 0, 0)
    assert _tuple(mdd_counts(*args, convention="strict")) == (3, 1, 0, 0, 0)


def test_departure_2_several_human_insertions_in_one_gap():
    # The human inserted UH AH between B and L: strict scores the gap once, the reference
    # each inserted phone.
    missed = ("B L", "B UH AH L", "B L")
    assert _tuple(mdd_counts(*missed)) == (2, 0, 2, 0, 0)
    assert _tuple(mdd_counts(*missed, convention="strict")) == (2, 0, 1, 0, 0)
    found = ("B L", "B UH AH L", "B UH AH L")
    assert _tuple(mdd_counts(*found)) == (2, 0, 0, 2, 0)
    assert _tuple(mdd_counts(*found, convention="strict")) == (2, 0, 0, 1, 0)


def test_departure_3_human_insertion_reproduced_with_extra_predicted_phones():
    # Human inserted AH; the model says AH IH in that gap. Strict compares the gaps ([AH] vs
    # [AH, IH]): DE. Reference: the inserted AH is aligned to the predicted AH (IH is a
    # predicted insertion, not scored): CD.
    args = ("B L", "B AH L", "B AH IH L")
    assert _tuple(mdd_counts(*args)) == (2, 0, 0, 1, 0)
    assert _tuple(mdd_counts(*args, convention="strict")) == (2, 0, 0, 0, 1)


def test_departure_4_which_predicted_phone_is_compared():
    # Human said IY for IH; the model says "S IY". canonical<->predicted: S=S, IH deleted,
    # T<->IY (substitution preferred to deletion on a tie); human<->predicted: S=S, IY=IY,
    # T deleted. Strict reads the predicted phone at IH from the first (nothing there: DE);
    # the reference reads it from the second (IY, the human's phone: CD). T is FR in both.
    args = ("S IH T", "S IY T", "S IY")
    assert _tuple(mdd_counts(*args)) == (1, 1, 0, 1, 0)
    assert _tuple(mdd_counts(*args, convention="strict")) == (1, 1, 0, 0, 1)


@pytest.mark.parametrize("convention", ["reference", "strict"])
def test_human_and_prediction_both_empty(convention):
    # The reference script crashes here; every canonical phone is a deletion, diagnosed.
    assert _tuple(mdd_counts("S IH T", "", "", convention=convention)) == (0, 0, 0, 3, 0)
    assert _tuple(mdd_counts("", "", "", convention=convention)) == (0, 0, 0, 0, 0)


def test_unknown_convention_is_an_error():
    with pytest.raises(ValueError, match="unknown MDD convention"):
        mdd_counts("AH", "AH", "AH", convention="qian")
    with pytest.raises(ValueError, match="unknown MDD convention"):
        mdd_metrics(["AH"], ["AH"], ["AH"], convention="qian")


# --- An independent re-implementation of the reference scoring, step by step -------------
#
# mdd_result.sh: align-text (Kaldi LevenshteinAlignment) on ref<->human_seq, human_seq<->hyp,
# ref<->hyp, each through wer_per_utt_details.pl (rows ref / hyp / op, <eps> for a gap; op D
# when hyp is <eps>, I when ref is <eps>, S when they differ, else C); then
# ins_del_sub_cor_analysis.py counts. Written from those scripts, sharing no code with mdd.py.

EPS = "<eps>"


def _kaldi_align_text(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    """Kaldi's LevenshteinAlignment: unit costs; trace-back from the end prefers sub/ok when no
    more costly than deletion and insertion, then deletion when no more costly than insertion."""
    M, N = len(a), len(b)
    e = [[0] * (N + 1) for _ in range(M + 1)]
    for n in range(N + 1):
        e[0][n] = n
    for m in range(1, M + 1):
        e[m][0] = e[m - 1][0] + 1
        for n in range(1, N + 1):
            e[m][n] = min(e[m - 1][n - 1] + (a[m - 1] != b[n - 1]), e[m - 1][n] + 1, e[m][n - 1] + 1)
    out = []
    m, n = M, N
    while m != 0 or n != 0:
        if m == 0:
            last_m, last_n = m, n - 1
        elif n == 0:
            last_m, last_n = m - 1, n
        else:
            sub_or_ok = e[m - 1][n - 1] + (a[m - 1] != b[n - 1])
            dele = e[m - 1][n] + 1
            ins = e[m][n - 1] + 1
            if sub_or_ok <= min(dele, ins):
                last_m, last_n = m - 1, n - 1
            elif dele <= ins:
                last_m, last_n = m - 1, n
            else:
                last_m, last_n = m, n - 1
        out.append((EPS if last_m == m else a[last_m], EPS if last_n == n else b[last_n]))
        m, n = last_m, last_n
    out.reverse()
    return out


def _detail_rows(pairs: list[tuple[str, str]]) -> tuple[list[str], list[str], list[str]]:
    """wer_per_utt_details.pl's ref, hyp and op rows."""
    ops = []
    for ref, hyp in pairs:
        if hyp == EPS:
            ops.append("D")
        elif ref == EPS:
            ops.append("I")
        elif ref != hyp:
            ops.append("S")
        else:
            ops.append("C")
    return [r for r, _ in pairs], [h for _, h in pairs], ops


def _reference_script_counts(ref: list[str], human: list[str], hyp: list[str]) -> tuple[int, ...]:
    """ins_del_sub_cor_analysis.py's counters for one utterance, as (TA, FR, FA, CD, DE)."""
    arr = [
        *_detail_rows(_kaldi_align_text(ref, human)),  # 0 ref, 1 human, 2 op
        *_detail_rows(_kaldi_align_text(human, hyp)),  # 3 human, 4 ours, 5 op
        *_detail_rows(_kaldi_align_text(ref, hyp)),  # 6 ref, 7 ours, 8 op
    ]
    k = Counter()
    # Deletion detection: the canonical phones of ref<->human and ref<->hyp walked in step.
    ref_seq, op, ref_seq3, op3 = arr[0], arr[2], arr[6], arr[8]
    flag = 0
    for i in range(len(ref_seq)):
        if ref_seq[i] == EPS:
            continue
        while ref_seq3[flag] == EPS:
            flag += 1
        assert ref_seq[i] == ref_seq3[flag]
        if op[i] == "D" and op3[flag] == "D":
            k["del_del"] += 1
        elif op[i] == "D" and op3[flag] != "C":
            k["del_del1"] += 1
        elif op[i] == "D":
            k["del_nodel"] += 1
        flag += 1
    # Correct / substituted / inserted phones: the human phones of ref<->human and human<->hyp.
    human_seq, human_seq2, our_seq2, op2 = arr[1], arr[3], arr[4], arr[5]
    flag = 0
    for i in range(len(human_seq)):
        if human_seq[i] == EPS:
            continue
        while human_seq2[flag] == EPS:
            flag += 1
        assert human_seq[i] == human_seq2[flag]
        if op[i] == "C":
            k["cor_cor" if op2[flag] == "C" else "cor_nocor"] += 1
        if op[i] == "S":
            if op2[flag] == "C":
                k["sub_sub"] += 1
            elif ref_seq[i] != our_seq2[flag]:
                k["sub_sub1"] += 1
            else:
                k["sub_nosub"] += 1
        if op[i] == "I":
            if op2[flag] == "C":
                k["ins_ins"] += 1
            elif op2[flag] != "D":
                k["ins_ins1"] += 1
            else:
                k["ins_noins"] += 1
        flag += 1
    ta = k["cor_cor"]
    fr = k["cor_nocor"]
    fa = k["sub_nosub"] + k["ins_noins"] + k["del_nodel"]
    cd = k["sub_sub"] + k["ins_ins"] + k["del_del"]
    de = k["sub_sub1"] + k["ins_ins1"] + k["del_del1"]
    return (ta, fr, fa, cd, de)


PHONES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()


def _corrupt(rng: random.Random, seq: list[str], inventory: list[str], rate: float) -> list[str]:
    """Random deletions, substitutions and insertions (several in a row now and then)."""
    out = [rng.choice(inventory) for _ in range(rng.random() < rate)]
    for ph in seq:
        r = rng.random()
        if r >= 2 * rate:
            out.append(ph)
        elif r >= rate:
            out.append(rng.choice(inventory))
        while rng.random() < rate:
            out.append(rng.choice(inventory))
    return out


def _generated_cases(n: int, seed: int) -> list[tuple[list[str], list[str], list[str]]]:
    rng = random.Random(seed)
    cases = []
    while len(cases) < n:
        # A small inventory makes many equally cheap alignments: tie-breaking matters.
        inventory = PHONES if rng.random() < 0.5 else PHONES[: rng.randint(2, 4)]
        canonical = [rng.choice(inventory) for _ in range(rng.randint(1, 12))]
        human = _corrupt(rng, canonical, inventory, rng.choice([0.05, 0.15, 0.3]))
        source = human if rng.random() < 0.7 else canonical
        predicted = _corrupt(rng, source, inventory, rng.choice([0.0, 0.1, 0.25, 0.4]))
        if not human and not predicted:
            continue  # the reference script crashes on this one (see the test above)
        cases.append((canonical, human, predicted))
    return cases


def test_default_equals_an_independent_reimplementation_of_the_reference_scripts():
    cases = _generated_cases(600, seed=18)
    differ_from_strict = 0
    for canonical, human, predicted in cases:
        ours = _tuple(mdd_counts(canonical, human, predicted))
        assert ours == _reference_script_counts(canonical, human, predicted), (canonical, human, predicted)
        differ_from_strict += ours != _tuple(mdd_counts(canonical, human, predicted, convention="strict"))
    # The generator does reach the cases where the conventions part.
    assert differ_from_strict > len(cases) // 10
