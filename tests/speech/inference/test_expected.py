"""Expected-score decoding: positions found in generated answers, and the expected value equal to a
hand computation from given probabilities (single-token and two-token "10")."""

from __future__ import annotations

import pytest
import torch

from loralab.speech.inference.expected import expected_score, number_token_ids, score_positions


class DigitTokenizer:
    """Characters as tokens (like tokenizers that split numbers into digits): "10" is "1" + "0"."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


def test_score_positions_point_at_each_numbers_first_token():
    tok = DigitTokenizer()
    text = '{"accuracy": 8, "fluency": 10, \'prosodic\':7, "total": 9}'
    tokens = tok(text)["input_ids"]
    positions = score_positions(tok, tokens)
    assert {k: text[i] for k, i in positions.items()} == {
        "accuracy": "8",
        "fluency": "1",
        "prosodic": "7",
        "total": "9",
    }
    assert text[positions["fluency"] : positions["fluency"] + 2] == "10"


def test_expected_score_by_hand_with_a_two_token_ten():
    tok = DigitTokenizer()
    ids = number_token_ids(tok, with_space=False)
    probs = torch.zeros(256)
    probs[ord("8")], probs[ord("9")], probs[ord("1")], probs[ord("x")] = 0.2, 0.3, 0.4, 0.1
    after_one = torch.zeros(256)
    after_one[ord("0")] = 0.75  # "1" continues as "10" three times in four
    # By hand: mass on numbers 0.9; p(1) = 0.4 * 0.25 = 0.1, p(10) = 0.4 * 0.75 = 0.3.
    hand = (8 * 0.2 + 9 * 0.3 + 1 * 0.1 + 10 * 0.3) / 0.9
    assert expected_score(probs, ids, after_one) == pytest.approx(hand)
    # Without the continuation, "1" is read as the start of "10".
    assert expected_score(probs, ids, None) == pytest.approx((8 * 0.2 + 9 * 0.3 + 10 * 0.4) / 0.9)


def test_expected_score_with_single_token_numbers():
    vocab = {str(k): k for k in range(11)}

    class WholeNumberTokenizer:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [vocab[text.strip()] + (100 if text.startswith(" ") else 0)]}

    ids = number_token_ids(WholeNumberTokenizer(), with_space=True)
    probs = torch.zeros(200)
    probs[110], probs[107] = 0.5, 0.25  # " 10" and " 7"
    assert expected_score(probs, ids) == pytest.approx((10 * 0.5 + 7 * 0.25) / 0.75)
    assert expected_score(torch.zeros(200), ids) is None  # no mass on any number
