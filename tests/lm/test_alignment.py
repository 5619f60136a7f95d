"""Byte-offset alignment of two tokenizations: hand-worked cases, real tokenizer pairs, special tokens on one side."""

from __future__ import annotations

import random

import pytest

from distill.lm.alignment import AlignedGroup, align, group_texts, prediction_pairs
from distill.lm.token_spans import TokenSpans, encode_with_spans

from .conftest import TEXTS


def spans(*pieces, special=()):
    """TokenSpans of consecutive pieces of text (strings), ``special``: positions of zero-width special tokens."""
    ids, out, flags, position = [], [], [], 0
    for piece in pieces:
        if piece is None:
            ids.append(-1), out.append((position, position)), flags.append(True)
            continue
        size = len(piece.encode())
        ids.append(len(ids)), out.append((position, position + size)), flags.append(False)
        position += size
    return TokenSpans(ids, out, flags)


def test_hand_worked_groups_one_to_one_and_many_to_many():
    # "unhappy dogs": student un|happy| dogs, teacher unh|appy| do|gs
    student = spans("un", "happy", " dogs")
    teacher = spans("unh", "appy", " do", "gs")
    groups = align(student, teacher)
    assert groups == [
        AlignedGroup((0, 1), (0, 1), (0, 7)),  # "unhappy": 2 tokens against 2, cut differently inside
        AlignedGroup((2,), (2, 3), (7, 12)),  # " dogs": 1 against 2
    ]
    assert group_texts(groups, "unhappy dogs") == [b"unhappy", b" dogs"]
    # the logits before each group's first token predict it after the same text; "unhappy" starts both: no logits
    assert prediction_pairs(groups, student, teacher) == [(1, 1, False)]


def test_exact_pairs_are_those_whose_predicted_tokens_are_the_same_bytes():
    student, teacher = spans("a", " b", " cd", " e"), spans("a", " b", " c", "d", " e")
    groups = align(student, teacher)
    assert [(g.student, g.teacher) for g in groups] == [((0,), (0,)), ((1,), (1,)), ((2,), (2, 3)), ((3,), (4,))]
    # " b" and " e" are the same token on both sides; " cd" against " c": not the same string
    assert prediction_pairs(groups, student, teacher) == [(0, 0, True), (1, 1, False), (2, 3, True)]


def test_a_gap_one_tokenizer_skips_is_a_boundary_the_other_may_cut_anywhere_in():
    # WordPiece drops spaces: "ab cd" as ab|cd with a one-byte gap; byte-level keeps the space in " cd"
    wordpiece = TokenSpans([0, 1], [(0, 2), (3, 5)], [False, False])
    byte_level = spans("ab", " cd")
    groups = align(byte_level, wordpiece)
    assert [(g.student, g.teacher, g.span) for g in groups] == [((0,), (0,), (0, 2)), ((1,), (1,), (2, 5))]


def test_zero_width_pieces_of_one_character_stay_with_the_token_before_them():
    # a fast tokenizer's character offsets put all three byte-level pieces of an emoji on the first one
    emoji = "🤗".encode()
    text_len = 1 + len(emoji)
    fast = TokenSpans([0, 1, 2, 3], [(0, 1), (1, 1 + 4), (5, 5), (5, 5)], [False] * 4)
    exact_bytes = TokenSpans([0, 1, 2, 3], [(0, 1), (1, 3), (3, 4), (4, 5)], [False] * 4)
    groups = align(fast, exact_bytes)
    assert [(g.student, g.teacher) for g in groups] == [((0,), (0,)), ((1, 2, 3), (1, 2, 3))]
    assert groups[-1].span == (1, text_len)


@pytest.mark.parametrize("side", ["student", "teacher"])
def test_a_bos_on_one_side_only_shifts_nothing(side):
    """TRL's GOLD bug: a BOS that only one tokenizer adds must not shift or collapse the alignment."""
    plain_s, plain_t = spans("The", " cat", " sat"), spans("The", " c", "at", " sat")
    with_bos = spans(None, "The", " cat", " sat") if side == "student" else spans(None, "The", " c", "at", " sat")
    student, teacher = (with_bos, plain_t) if side == "student" else (plain_s, with_bos)
    before = prediction_pairs(align(plain_s, plain_t), plain_s, plain_t)
    after = prediction_pairs(align(student, teacher), student, teacher)
    assert before == [(0, 0, False), (1, 2, True)]
    shift = (1, 0) if side == "student" else (0, 1)
    assert after == [(s + shift[0], t + shift[1], exact) for s, t, exact in before]  # the same pairs, one position on
    assert [(g.student, g.teacher) for g in align(student, teacher)] == [
        tuple(tuple(p + d for p in positions) for positions, d in zip((g.student, g.teacher), shift))
        for g in align(plain_s, plain_t)
    ]


def test_special_tokens_on_both_sides_and_in_the_middle_are_left_out():
    student = spans(None, "Hi", " there", None)  # BOS ... EOS
    teacher = spans("Hi", None, " there")  # a marker in the middle, as a chat template puts one
    groups = align(student, teacher)
    assert [(g.student, g.teacher) for g in groups] == [((1,), (0,)), ((2,), (2,))]
    assert prediction_pairs(groups, student, teacher) == [(1, 1, True)]


def test_a_chat_marker_written_in_the_text_is_left_out_on_both_sides(bpe_pair):
    """SmolLM2's <|im_start|>: one tokenizer knows it (a special token with a span), the other spells it in pieces."""
    student, _ = bpe_pair
    knows = student.__class__.from_pretrained(student.name_or_path)
    knows.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    text = "<|im_start|>user\nThe assert statement<|im_end|>"
    marked, pieces = encode_with_spans(knows, text), encode_with_spans(student, text)
    assert marked.special[0] and marked.spans[0] == (0, 12) and not any(pieces.special)
    groups = align(pieces, marked)
    texts = group_texts(groups, text)
    assert b"".join(texts) == b"user\nThe assert statement"  # neither marker's text is in a group
    assert all(b"<|" not in t and b"|>" not in t for t in texts)
    assert all(not marked.special[p] for g in groups for p in g.teacher)
    # the plain text without the markers aligns to the same groups of ordinary tokens
    inner = "user\nThe assert statement"
    plain = align(encode_with_spans(student, inner), encode_with_spans(student, inner))
    assert [len(g.teacher) for g in groups] == [len(g.teacher) for g in plain]


def test_bert_cls_and_sep_are_left_out(bert, bpe_pair):
    text = TEXTS[0]
    with_specials, without = encode_with_spans(bert, text, True), encode_with_spans(bert, text, False)
    assert bert.convert_ids_to_tokens(with_specials.ids[:1] + with_specials.ids[-1:]) == ["[CLS]", "[SEP]"]
    student = encode_with_spans(bpe_pair[0], text)
    shifted = [(s, t + 1, x) for s, t, x in prediction_pairs(align(student, without), student, without)]
    assert prediction_pairs(align(student, with_specials), student, with_specials) == shifted


def _texts(seed: int, count: int = 6) -> list[str]:
    rng = random.Random(seed)
    extra = ["héllo", "naïve café", "🤗", "日本語", "x  =  1", "\n\n", "don't", "12345", "tab\there", "Ünïcödé"]
    out = []
    for _ in range(count):
        words = " ".join(rng.choice(TEXTS).split()[: rng.randint(3, 12)] + rng.sample(extra, 3))
        out.append(words)
    return out


def _check(text: str, student: TokenSpans, teacher: TokenSpans) -> None:
    groups = align(student, teacher)
    data = text.encode()
    # the concatenated text of the groups is the text (each pair here has a byte-level side, which covers every byte)
    assert b"".join(group_texts(groups, text)) == data
    for tokens, side in ((student, "student"), (teacher, "teacher")):
        seen = [p for g in groups for p in getattr(g, side)]
        ordinary = [p for p in range(len(tokens)) if not tokens.special[p]]
        assert seen == ordinary  # every ordinary token once, in order; no special token
        for g in groups:
            for p in getattr(g, side):
                start, end = tokens.spans[p]
                if end > start:
                    assert g.span[0] <= start and end <= g.span[1] or start < g.span[0] < end  # inside (or its char)
    for g in groups:
        assert g.student and g.teacher and g.span[1] > g.span[0]
    for a, b in zip(groups, groups[1:]):
        assert a.span[1] == b.span[0]
    # the groups are as fine as they can be: no cut inside a group is shared by both sides
    for g in groups:
        s_cuts = {student.spans[p][0] for p in g.student[1:] if student.spans[p][1] > student.spans[p][0]}
        t_cuts = {teacher.spans[p][0] for p in g.teacher[1:] if teacher.spans[p][1] > teacher.spans[p][0]}
        assert not s_cuts & t_cuts
    for s, t, exact in prediction_pairs(groups, student, teacher):
        # both predict the first token of a group after reading the same text
        s_read = max((e for e, sp in zip((x[1] for x in student.spans[: s + 1]), student.special[: s + 1]) if not sp), default=0)
        t_read = max((e for e, sp in zip((x[1] for x in teacher.spans[: t + 1]), teacher.special[: t + 1]) if not sp), default=0)
        assert data[:s_read].rstrip() == data[:t_read].rstrip()
        assert exact == (student.spans[s + 1] == teacher.spans[t + 1])


PAIRS = ["bpe300-bpe400", "bpe300-bert", "bpe300-cl100k", "cl100k-o200k", "bert-o200k", "o200k-bpe400"]


@pytest.mark.parametrize("pair", PAIRS)
def test_property_groups_spell_the_text_on_real_tokenizer_pairs(pair, request, bpe_pair):
    tokenizers = {"bpe300": bpe_pair[0], "bpe400": bpe_pair[1]}
    for name in pair.split("-"):
        if name not in tokenizers:
            tokenizers[name] = request.getfixturevalue(name)
    first, second = (tokenizers[n] for n in pair.split("-"))
    for seed, text in enumerate(_texts(PAIRS.index(pair))):
        student = encode_with_spans(first, text, add_special_tokens=seed % 2 == 0)
        teacher = encode_with_spans(second, text, add_special_tokens=seed % 2 == 1)
        _check(text, student, teacher)


def test_a_larger_embedded_bpe_coarsens_the_smaller_one(bpe_pair):
    """Two BPEs trained on the same text share their first merges: the larger one's tokens are unions of the smaller one's."""
    text = " ".join(TEXTS) + " unseen wörds 🤗"
    student, teacher = (encode_with_spans(t, text) for t in bpe_pair)
    groups = align(student, teacher)
    pairs = prediction_pairs(groups, student, teacher)
    assert len(teacher) < len(student) and all(len(g.teacher) == 1 for g in groups)
    assert [g.span for g in groups] == [teacher.spans[g.teacher[0]] for g in groups]
    assert any(g.one_to_one for g in groups) and any(exact for *_, exact in pairs)


def test_identical_tokenizations_align_one_to_one(cl100k):
    text = TEXTS[1] + " 🤗 héllo"
    tokens = encode_with_spans(cl100k, text)
    groups = align(tokens, tokens)
    # the emoji's three byte pieces are three tokens on both sides, cut at the same bytes: three groups
    assert [(g.student, g.teacher) for g in groups] == [((p,), (p,)) for p in range(len(tokens))]
    assert prediction_pairs(groups, tokens, tokens) == [(p - 1, p - 1, True) for p in range(1, len(tokens))]


def test_one_side_empty_gives_no_groups():
    assert align(spans(None), spans("a")) == [] and align(spans(), spans()) == []


def test_every_pair_of_offsets_and_fallback_agree(bpe_pair):
    """The decoding fallback places the byte-level BPE's tokens where its offsets put them (ASCII text)."""
    from distill.lm.token_spans import spans_from_decoding

    tokenizer = bpe_pair[1]
    for text in TEXTS:
        fast = encode_with_spans(tokenizer, text)
        decoded = spans_from_decoding(tokenizer, text, fast.ids)
        assert decoded.spans == fast.spans

