"""Tokens matched across vocabularies by the bytes they stand for."""

from __future__ import annotations

from distill.lm.shared_vocabulary import shared_vocabulary, token_bytes


def test_byte_level_tokens_are_read_through_the_byte_alphabet(bpe_pair):
    small, _ = bpe_pair
    table = token_bytes(small)
    for piece, token in list(table.items())[:50] + [(b" the", table.get(b" the"))]:
        if token is not None:
            assert small.decode([token]).encode() == piece or len(piece) == 1  # single bytes may be partial UTF-8
    assert small.eos_token_id not in table.values()  # special tokens never match


def test_shared_pairs_decode_to_the_same_bytes(bpe_pair, cl100k):
    small, large = bpe_pair
    for student, teacher, decode in ((small, large, large.decode), (small, cl100k, None)):
        s_ids, t_ids = shared_vocabulary(student, teacher)
        assert len(s_ids) > 200 and s_ids.tolist() == sorted(set(s_ids.tolist()))
        for s, t in zip(s_ids.tolist()[::7], t_ids.tolist()[::7]):
            s_bytes = bytes(token_bytes_of(student, s))
            t_bytes = cl100k.decode_bytes([t]) if decode is None else bytes(token_bytes_of(teacher, t))
            assert s_bytes == t_bytes


def token_bytes_of(tokenizer, token):
    return {v: k for k, v in token_bytes(tokenizer).items()}[token]


def test_smaller_bpe_is_inside_the_larger_one(bpe_pair):
    """The 400-token BPE extends the 300-token one's merges: every ordinary token of the smaller one is shared."""
    small, large = bpe_pair
    s_ids, _ = shared_vocabulary(small, large)
    assert len(s_ids) == len(token_bytes(small)) == len(small) - 1  # all but <|endoftext|>


def test_wordpiece_continuations_that_look_like_words_are_left_out(bert, cl100k):
    table = token_bytes(bert)
    vocab = bert.get_vocab()
    assert "##ing" in vocab and "ing" in vocab and b"ing" not in table  # ambiguous: left out
    assert b"##ssed" not in table and table[b"ssed"] == vocab["##ssed"]  # a continuation stands for its letters
    assert "##noodles" not in vocab and table[b"noodles"] == vocab["noodles"] and bert.cls_token_id not in table.values()
    s_ids, t_ids = shared_vocabulary(bert, cl100k)
    assert len(s_ids) > 1000
