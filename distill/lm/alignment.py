"""Aligning two tokenizations of the same text by byte offsets: the groups of tokens that cover the same text.

Two tokenizers cut a text at different places. Wherever both cut at the same
place, the tokens before the cut cover the same text on both sides: that cut is
a shared boundary. Between consecutive shared boundaries lies a group: one or more
student tokens and one or more teacher tokens that spell the same stretch of
text (one-to-one where the tokens coincide, many-to-many elsewhere).

Special tokens (a BOS or [CLS]/[SEP] that one tokenizer adds, chat markers one
tokenizer knows) are left out: they are in no group and move no boundary, and
the text a special token stands for (a chat marker written in the text) is left
out on the other side too (a token that reaches into it keeps only its own part). Token positions in the groups are positions in the
original sequences, specials included, so a BOS on one side only shifts nothing.

A tokenizer that skips characters (WordPiece drops spaces) leaves gaps between
its tokens; a boundary is then the gap, and it is shared when the other side cuts
anywhere inside it. Tokens of zero width (the second and third byte-level pieces
of a character that a fast tokenizer's character offsets cannot place) belong to
the token before them and make no boundary.

The pairs for a loss (:func:`prediction_pairs`): at the start of each group both
models have read the same text, so the student's logits before its group's first
token and the teacher's logits before its group's first token predict the next
token after the same text (each in its own vocabulary).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from distill.lm.token_spans import Span, TokenSpans


@dataclass(frozen=True)
class AlignedGroup:
    """Student and teacher tokens (positions in their sequences) that cover the bytes ``span`` of the text."""

    student: tuple[int, ...]
    teacher: tuple[int, ...]
    span: Span

    @property
    def one_to_one(self) -> bool:
        return len(self.student) == 1 and len(self.teacher) == 1


def align(student: TokenSpans, teacher: TokenSpans) -> list[AlignedGroup]:
    """The groups of student and teacher tokens that cover the same text, in text order.

    Both tokenizations must be of the same text (byte spans from :mod:`distill.lm.token_spans`);
    where one stops earlier (a truncated sequence), the last group holds the rest of the other.
    """
    holes = _special_regions(student) + _special_regions(teacher)
    s_pos, s_spans = _kept(student, holes)
    t_pos, t_spans = _kept(teacher, holes)
    if not s_pos or not t_pos:
        return []
    s_cuts, t_cuts = _boundaries(s_spans), _boundaries(t_spans)
    groups, s_start, t_start = [], 0, 0
    i = j = 0
    while i < len(s_cuts) and j < len(t_cuts):
        (s_index, s_lo, s_hi), (t_index, t_lo, t_hi) = s_cuts[i], t_cuts[j]
        if max(s_lo, t_lo) <= min(s_hi, t_hi):  # both cut here: a shared boundary
            groups.append(_group(s_pos, s_spans, s_start, s_index, t_pos, t_spans, t_start, t_index))
            s_start, t_start = s_index, t_index
            i, j = i + 1, j + 1
        elif s_hi < t_lo:
            i += 1
        else:
            j += 1
    groups.append(_group(s_pos, s_spans, s_start, len(s_pos), t_pos, t_spans, t_start, len(t_pos)))
    return groups


def prediction_pairs(groups: Sequence[AlignedGroup], student: TokenSpans, teacher: TokenSpans) -> list[tuple[int, int, bool]]:
    """``(student position, teacher position, exact)`` of the logits that predict each group's first token.

    Both positions are one before the group's first token on their side (the logits at
    ``t`` predict token ``t + 1``); a group whose first token is at position 0 on
    either side has no such logits and gives no pair. ``exact``: the two predicted
    tokens are the same string (the same bytes of the text).
    """
    pairs = []
    for group in groups:
        s_first, t_first = group.student[0], group.teacher[0]
        if s_first >= 1 and t_first >= 1:
            exact = student.spans[s_first] == teacher.spans[t_first] and student.spans[s_first][1] > student.spans[s_first][0]
            pairs.append((s_first - 1, t_first - 1, bool(exact)))
    return pairs


def group_texts(groups: Sequence[AlignedGroup], text: str) -> list[bytes]:
    """The bytes of the text each group covers (for checks and displays; a group may cut a character)."""
    data = text.encode("utf-8")
    return [data[g.span[0]:g.span[1]] for g in groups]


def _special_regions(tokens: TokenSpans) -> list[Span]:
    return [span for span, special in zip(tokens.spans, tokens.special) if special and span[1] > span[0]]


def _kept(tokens: TokenSpans, holes: Sequence[Span]) -> tuple[list[int], list[Span]]:
    """The ordinary tokens outside every special region: their positions and spans, made monotone."""
    positions, spans, end = [], [], 0
    for position, (span, special) in enumerate(zip(tokens.spans, tokens.special)):
        if special or (span[1] > span[0] and any(lo <= span[0] and span[1] <= hi for lo, hi in holes)):
            continue
        start, stop = span
        for lo, hi in holes:  # a token that reaches into a special token's text keeps only its own part
            if start < hi and lo < stop:
                if lo <= start:
                    start = hi
                elif stop <= hi:
                    stop = lo
        start = max(start, end)
        end = max(stop, start)
        positions.append(position)
        spans.append((start, end))
    return positions, spans


def _boundaries(spans: Sequence[Span]) -> list[tuple[int, int, int]]:
    """``(k, lo, hi)``: a cut before kept token ``k``, anywhere in the gap ``[lo, hi]`` after token ``k - 1``."""
    return [(k, spans[k - 1][1], spans[k][0]) for k in range(1, len(spans)) if spans[k][1] > spans[k][0]]


def _group(s_pos: Sequence[int], s_spans: Sequence[Span], s_a: int, s_b: int,
           t_pos: Sequence[int], t_spans: Sequence[Span], t_a: int, t_b: int) -> AlignedGroup:
    spans = [*s_spans[s_a:s_b], *t_spans[t_a:t_b]]
    return AlignedGroup(tuple(s_pos[s_a:s_b]), tuple(t_pos[t_a:t_b]), (min(s for s, _ in spans), max(e for _, e in spans)))
