"""Word-level tokenizers and tiny text encoders for the demo model.

FluxPipeline expects a CLIP pair (``tokenizer`` + ``text_encoder``, pooled output) and a T5 pair
(``tokenizer_2`` + ``text_encoder_2``, per-token output). Both tokenizers here are built from the
world's vocabulary so each word is exactly one token: CLIP gets a BPE whose merges spell every word,
T5 gets a unigram model whose pieces are the words. Both are stock transformers classes, so the
folder loads with ``from_pretrained`` and no custom code.
"""

from __future__ import annotations

import json

from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5Tokenizer

from gpu.demo.world import vocabulary

# Longest caption: 2 x ("a large purple triangle in the bottom right") + "and" + bg clause (5) = 24 words;
# with CLIP's BOS/EOS or T5's EOS that is <= 26 tokens. 32 leaves headroom and is what nibble.json uses.
MAX_SEQUENCE_LENGTH = 32
CLIP_HIDDEN = 128
T5_HIDDEN = 128


def _bpe_for_words(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocab + merges of a BPE in CLIP's format (``</w>`` word suffix) in which every word is one token.

    Trained with the ``tokenizers`` BPE trainer on the word list with an unbounded vocabulary, so it
    keeps merging until each word is whole (hand-written merge lists conflict between words).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    specials = ["<|startoftext|>", "<|endoftext|>"]
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>", unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        vocab_size=10_000,
        min_frequency=1,
        special_tokens=specials,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tok.train_from_iterator(words, trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


def build_tokenizers(max_length: int = MAX_SEQUENCE_LENGTH) -> tuple[CLIPTokenizer, T5Tokenizer]:
    """Return (CLIP tokenizer, T5 tokenizer) covering ``world.vocabulary()`` with one token per word."""
    words = vocabulary()
    vocab, merges = _bpe_for_words(words)
    clip_tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -10.0)]
    pieces += [("▁" + w, -1.0) for w in words]
    t5_tok = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_length)
    for w in words:  # one token per word (plus specials) in both tokenizers
        assert len(clip_tok(w, add_special_tokens=False).input_ids) == 1, w
        assert len(t5_tok(w, add_special_tokens=False).input_ids) == 1, w
    return clip_tok, t5_tok


def build_text_encoders(clip_tok: CLIPTokenizer, t5_tok: T5Tokenizer) -> tuple[CLIPTextModel, T5EncoderModel]:
    """Tiny randomly initialised CLIP and T5 encoders (trained jointly with the transformer)."""
    clip_cfg = CLIPTextConfig(
        vocab_size=len(clip_tok),
        hidden_size=CLIP_HIDDEN,
        intermediate_size=CLIP_HIDDEN * 2,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=clip_tok.model_max_length,
        projection_dim=CLIP_HIDDEN,
        # pooled output reads the hidden state at the first EOS; ids must match the tokenizer's
        bos_token_id=clip_tok.bos_token_id,
        eos_token_id=clip_tok.eos_token_id,
        pad_token_id=clip_tok.pad_token_id,
    )
    t5_cfg = T5Config(
        vocab_size=len(t5_tok),
        d_model=T5_HIDDEN,
        d_kv=32,
        d_ff=T5_HIDDEN * 2,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=16,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=t5_tok.pad_token_id,
        eos_token_id=t5_tok.eos_token_id,
        decoder_start_token_id=t5_tok.pad_token_id,
    )
    return CLIPTextModel(clip_cfg), T5EncoderModel(t5_cfg)
