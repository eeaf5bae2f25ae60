"""The transformer encoder and decoder written from scratch: causality, padding invariance, the key/value cache,
every way z enters, and transformer/RNN pairs."""

import dataclasses

import pytest
import torch

from textvae import TextVAE, load_pretrained
from textvae.config import ConfigError, DecoderConfig, EncoderConfig
from textvae.data.batching import collate
from textvae.modules.decoders import (
    PRETRAINED_Z_MODES,
    TRANSFORMER_Z_MODES,
    Z_MODES,
    RecomputingDecoder,
    build_decoder,
)
from textvae.modules.encoders import build_encoder

from .conftest import SENTENCES, fit, tiny_model_config

TINY = {"embedding_size": 16, "hidden_size": 16, "num_layers": 2, "num_heads": 2, "feedforward_size": 24}


def encoder_config(**kw) -> EncoderConfig:
    return EncoderConfig(type="transformer", **{**TINY, **kw})


def decoder_config(z_mode="memory", **kw) -> DecoderConfig:
    return DecoderConfig(type="transformer", z_mode=z_mode, memory_slots=2, prefix_slots=3, **{**TINY, **kw})


def transformer_model(tokenizer, z_mode="memory+embedding", seed=0, **decoder):
    torch.manual_seed(seed)
    config = tiny_model_config(
        "lstm", encoder={"type": "transformer", **TINY}, decoder={"type": "transformer", "z_mode": z_mode, **TINY, **decoder}
    )
    model = TextVAE.from_config(config, tokenizer).eval()
    with torch.no_grad():  # sharper, z-dependent distributions, so decoding choices matter
        model.decoder.output.weight.mul_(20)
    return model


@pytest.mark.parametrize("z_mode", TRANSFORMER_Z_MODES)
def test_changing_token_t_changes_no_output_before_t(z_mode):
    torch.manual_seed(0)
    decoder = build_decoder(30, 5, decoder_config(z_mode)).eval()
    ids, z = torch.randint(4, 30, (2, 8)), torch.randn(2, 5)
    before = decoder(ids, z)
    for t in (0, 3, 7):
        changed = ids.clone()
        changed[:, t] = (changed[:, t] - 4 + 1) % 26 + 4
        after = decoder(changed, z)
        assert torch.allclose(after[:, :t], before[:, :t], atol=1e-6)
        assert not torch.allclose(after[:, t], before[:, t], atol=1e-4)


@pytest.mark.parametrize("pooling", ["mean", "first", "attention"])
@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_padded_sentence_encodes_as_the_sentence_alone(pooling, positions):
    torch.manual_seed(0)
    encoder = build_encoder(20, encoder_config(pooling=pooling, positions=positions)).eval()
    sentences = [[4, 5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    batch = collate(sentences, pad_id=0, bos_id=1, eos_id=2)
    together = encoder(batch["input_ids"], batch["lengths"])
    assert together.shape == (3, 16)
    for i, sentence in enumerate(sentences):
        alone = collate([sentence], pad_id=0, bos_id=1, eos_id=2)
        assert torch.allclose(together[i], encoder(alone["input_ids"], alone["lengths"])[0], atol=1e-5)
    other = collate([[4, 5, 6, 7, 8, 3]], 0, 1, 2)  # every token counts, the last word too
    assert not torch.allclose(together[0], encoder(other["input_ids"], other["lengths"])[0], atol=1e-4)


@pytest.mark.parametrize("z_mode", TRANSFORMER_Z_MODES)
def test_step_by_step_logits_equal_the_full_forward_pass(z_mode):
    torch.manual_seed(0)
    decoder = build_decoder(30, 5, decoder_config(z_mode)).eval()
    ids, z = torch.randint(4, 30, (3, 9)), torch.randn(3, 5)
    with torch.no_grad():
        full = decoder.project(decoder(ids, z))
        state = decoder.initial_state(z)
        for t in range(ids.size(1)):
            logits, state = decoder.step(ids[:, t], z, state)
            assert torch.allclose(logits, full[:, t], atol=1e-5)
        # the cache holds one position per token (plus the prefix), and subsetting it keeps rows aligned
        assert state.self_kv[0][0].shape[2] == ids.size(1) + decoder.prefix_slots
        keep = torch.tensor([2, 0])
        subset, _ = decoder.step(ids[keep, 0], z[keep], decoder.select_state(state, keep))
        every, _ = decoder.step(ids[:, 0], z, state)
        assert torch.allclose(subset, every[keep], atol=1e-5)


def end_rows_at_different_steps(model, z, max_length):
    """Raise <eos>'s output bias until greedy rows end at different steps (a random decoder seldom picks
    <eos>), so that decoding drops finished rows through ``select_state``."""
    eos = model.tokenizer.eos_id
    for bias in torch.arange(0.0, 20.0, 0.25):
        with torch.no_grad():
            model.decoder.output.bias[eos] = bias
        if len({len(row) for row in model.generate(z, max_length=max_length)}) >= 2:
            return
    raise AssertionError("no <eos> bias gives rows of different lengths")


def test_without_a_latent_the_decoder_is_a_plain_language_model():
    torch.manual_seed(0)
    decoder = build_decoder(30, 0, decoder_config("memory+prefix+embedding")).eval()
    assert decoder.z_to_memory is decoder.z_to_prefix is decoder.z_to_embedding is None
    ids, z = torch.randint(4, 30, (2, 5)), torch.zeros(2, 0)
    with torch.no_grad():
        full, state = decoder.project(decoder(ids, z)), decoder.initial_state(z)
        for t in range(ids.size(1)):
            logits, state = decoder.step(ids[:, t], z, state)
            assert torch.allclose(logits, full[:, t], atol=1e-5)


@pytest.mark.parametrize("z_mode", ["memory", "prefix+embedding"])
def test_greedy_and_beam_with_the_cache_equal_decoding_without_it(tokenizer, z_mode):
    model = transformer_model(tokenizer, z_mode)
    z = torch.randn(7, 4, generator=torch.Generator().manual_seed(1)) * 2
    end_rows_at_different_steps(model, z, 10)
    cached = {s: model.generate(z, strategy=s, max_length=10) for s in ("greedy", "beam")}
    model.decoder = RecomputingDecoder(model.decoder)
    for strategy, rows in cached.items():
        assert model.generate(z, strategy=strategy, max_length=10) == rows


def test_rows_decode_the_same_alone_as_in_a_batch(tokenizer):
    model = transformer_model(tokenizer, "memory+prefix+embedding")
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(2)) * 2
    end_rows_at_different_steps(model, z, 8)
    batched = model.generate(z, strategy="beam", max_length=8)
    assert batched == [model.generate(z[i : i + 1], strategy="beam", max_length=8)[0] for i in range(5)]


@pytest.mark.parametrize("z_mode", TRANSFORMER_Z_MODES)
def test_every_z_mode_carries_gradients_to_the_encoder(tokenizer, z_mode):
    model = transformer_model(tokenizer, z_mode).train()
    ids, lengths = model.tokenize(SENTENCES)
    output = model({"input_ids": ids, "lengths": lengths})
    torch.autograd.grad(output.rec.sum(), [output.z], retain_graph=True)  # z is used by the decoder
    output.rec.sum().backward()  # the reconstruction term alone, not the KL, must reach the encoder
    for name in ("embedding.weight", "blocks.0.attention.qkv.weight", "blocks.1.feedforward.0.weight"):
        grad = model.encoder.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("encoder,decoder", [("transformer", "lstm"), ("gru", "transformer")])
def test_mixed_rnn_and_transformer_pairs_train_decode_and_reload(tokenizer, tmp_path, encoder, decoder):
    torch.manual_seed(0)
    sizes = {"embedding_size": 16, "hidden_size": 16}
    config = tiny_model_config(
        "lstm",
        encoder={"type": encoder, **(TINY if encoder == "transformer" else sizes)},
        decoder={"type": decoder, "z_mode": "memory" if decoder == "transformer" else "init+concat",
                 **(TINY if decoder == "transformer" else sizes)},
    )
    model = TextVAE.from_config(config, tokenizer)
    ids, lengths = model.tokenize(SENTENCES)
    losses = fit(model, {"input_ids": ids, "lengths": lengths}, steps=5, lr=1e-2)
    assert losses[-1] < losses[0]
    model.eval()
    reconstructions = model.reconstruct(SENTENCES[:2])
    model.save_pretrained(tmp_path / "m")
    loaded = load_pretrained(tmp_path / "m")
    assert loaded.reconstruct(SENTENCES[:2]) == reconstructions
    assert torch.equal(loaded.encode(SENTENCES), model.encode(SENTENCES))


def test_each_decoder_type_names_its_own_z_modes():
    with pytest.raises(ConfigError, match=r"'init\+concat' does not apply to the transformer decoder; use one of memory, prefix"):
        build_decoder(30, 5, decoder_config("init+concat"))
    with pytest.raises(ConfigError, match=r"'memory' does not apply to the lstm decoder; use one of init, concat, init\+concat"):
        build_decoder(30, 5, DecoderConfig(type="lstm", z_mode="memory"))
    with pytest.raises(ConfigError, match="model.decoder.memory_slots: 0 is out of range; it must be at least 1"):
        build_decoder(30, 5, dataclasses.replace(decoder_config("memory"), memory_slots=0))
    # the config accepts exactly the modes some decoder takes
    choices = dict((f.name, f) for f in dataclasses.fields(DecoderConfig))["z_mode"].metadata["choices"]
    assert set(choices) == set(Z_MODES) | set(TRANSFORMER_Z_MODES)
    assert set(PRETRAINED_Z_MODES) <= set(TRANSFORMER_Z_MODES)


def test_sequences_longer_than_max_positions_fail_clearly():
    encoder = build_encoder(20, encoder_config(max_positions=6))
    with pytest.raises(ValueError, match="max_positions"):
        encoder(torch.randint(4, 20, (1, 7)), torch.tensor([7]))
    decoder = build_decoder(20, 3, decoder_config(max_positions=6))
    with pytest.raises(ValueError, match="max_positions"):
        decoder(torch.randint(4, 20, (1, 7)), torch.randn(1, 3))


def test_tied_embeddings_share_one_matrix():
    decoder = build_decoder(20, 3, decoder_config(tie_embeddings=True))
    assert decoder.output.weight is decoder.embedding.weight
    with pytest.raises(ConfigError, match="tie_embeddings"):
        build_decoder(20, 3, decoder_config(tie_embeddings=True, embedding_size=8))


def test_generation_benchmark_runs_with_tiny_arguments(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "benchmarks" / "generation.py"
    spec = importlib.util.spec_from_file_location("bench_generation", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "generation.json"
    assert bench.main(["--sentences", "4", "--batch-size", "2", "--length", "3", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["identical_outputs"] and set(report["results"]) == {"cached", "recomputed"}
    assert "sentences/s" in capsys.readouterr().out
