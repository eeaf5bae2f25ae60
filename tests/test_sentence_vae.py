import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from textvae import CheckpointError, InputError, TextVAE, load_pretrained
from textvae.data.batching import collate
from textvae.models.base import evaluating

from .conftest import SENTENCES, tiny_model_config


def batch_of(model, sentences):
    ids, lengths = model.tokenize(sentences)
    return {"input_ids": ids, "lengths": lengths}


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_forward_returns_named_terms_and_gradients_reach_the_encoder(tokenizer, rnn):
    torch.manual_seed(0)
    model = TextVAE.from_config(tiny_model_config(rnn), tokenizer)
    out = model(batch_of(model, SENTENCES), step=0)
    assert out.loss.dim() == 0
    assert out.rec.shape == out.kl.shape == (len(SENTENCES),)
    assert out.kl_per_dim.shape == (len(SENTENCES), 4)
    assert torch.allclose(out.kl, out.kl_per_dim.sum(-1))
    assert torch.allclose(out.loss, out.rec.mean() + out.kl.mean())  # constant schedule, beta 1
    assert out.num_tokens.item() == sum(len(s.split()) + 1 for s in SENTENCES)
    out.loss.backward()
    for name in ("embedding.weight", "rnn.weight_ih_l0"):
        grad = model.encoder.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_reconstruction_nll_equals_a_dense_reference(tiny_model):
    """Projecting only real positions gives the same per-sentence NLL as a full softmax over the padded batch."""
    tiny_model.eval()
    batch = batch_of(tiny_model, SENTENCES)
    z = torch.randn(len(SENTENCES), 4)
    nll = tiny_model.reconstruction_nll(batch["input_ids"], batch["lengths"], z)
    logits = tiny_model.decoder.project(tiny_model.decoder(batch["input_ids"][:, :-1], z))
    logp = torch.log_softmax(logits, -1).gather(-1, batch["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
    mask = torch.arange(logp.size(1)) < (batch["lengths"] - 1).unsqueeze(1)
    assert torch.allclose(nll, -(logp * mask).sum(1), atol=1e-5)


def test_log_prob_given_z_with_a_sample_dimension(tiny_model):
    tiny_model.eval()
    batch = batch_of(tiny_model, SENTENCES[:3])
    z = torch.randn(5, 3, 4)
    many = tiny_model.log_prob_given_z(batch["input_ids"], batch["lengths"], z)
    assert many.shape == (5, 3)
    one = tiny_model.log_prob_given_z(batch["input_ids"], batch["lengths"], z[2])
    assert torch.allclose(many[2], one, atol=1e-5)
    assert torch.all(many < 0)


def test_padding_does_not_change_a_sentences_terms(tiny_model):
    tiny_model.eval()
    torch.manual_seed(1)
    z = torch.randn(1, 4)
    alone = batch_of(tiny_model, [SENTENCES[4]])
    padded = batch_of(tiny_model, [SENTENCES[4], SENTENCES[3]])
    a = tiny_model.reconstruction_nll(alone["input_ids"], alone["lengths"], z)
    b = tiny_model.reconstruction_nll(padded["input_ids"], padded["lengths"], z.expand(2, -1))
    assert torch.allclose(a[0], b[0], atol=1e-5)
    assert torch.allclose(tiny_model.encode([SENTENCES[4]]), tiny_model.encode([SENTENCES[4], SENTENCES[3]])[:1], atol=1e-6)


def test_save_and_load_restore_every_tensor_and_output(tmp_path, tokenizer):
    torch.manual_seed(0)
    config = tiny_model_config("gru", decoder={"embedding_size": 12, "tie_embeddings": True})
    model = TextVAE.from_config(config, tokenizer).eval()
    folder = model.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    loaded = load_pretrained(folder)
    assert isinstance(loaded, TextVAE) and not loaded.training
    assert loaded.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded.decoder.output.weight is loaded.decoder.embedding.weight
    assert torch.equal(model.encode(SENTENCES), loaded.encode(SENTENCES))
    z = torch.randn(3, 4)
    assert model.decode(z) == loaded.decode(z)
    assert model.reconstruct(SENTENCES[:2]) == loaded.reconstruct(SENTENCES[:2])
    # saving again over the same folder replaces it cleanly and leaves no temporary folders
    model.save_pretrained(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_api_encode_decode_sample_interpolate(tiny_model):
    z = tiny_model.encode(SENTENCES)
    assert z.shape == (len(SENTENCES), 4)
    samples = tiny_model.encode(SENTENCES, sample=True)
    assert samples.shape == z.shape and not torch.equal(samples, z)
    assert len(tiny_model.decode(z)) == len(SENTENCES)
    assert len(tiny_model.reconstruct(SENTENCES[0])) == 1
    assert len(tiny_model.sample(3, strategy="sample", seed=0)) == 3
    assert tiny_model.sample(3, strategy="sample", seed=5) == tiny_model.sample(3, strategy="sample", seed=5)
    path = tiny_model.interpolate(SENTENCES[0], SENTENCES[1], steps=4)
    assert len(path) == 4
    ids, lengths = tiny_model.tokenize(["the cat sat ."])
    assert ids[0, 0].item() == tiny_model.tokenizer.bos_id and lengths.tolist() == [6]


def test_generation_stops_at_max_length(tiny_model):
    ids = tiny_model.generate(torch.randn(4, 4), strategy="sample", max_length=3)
    assert all(len(row) <= 4 for row in ids)


def test_bad_input_gives_clear_errors(tiny_model, tokenizer):
    with pytest.raises(InputError, match="no sentences"):
        tiny_model.encode([])
    with pytest.raises(InputError, match="sentence 1 is empty"):
        tiny_model.encode(["the cat .", "   "])
    with pytest.raises(InputError, match="not a string"):
        tiny_model.encode(["the cat .", 3])
    with pytest.raises(InputError, match=r"shape \(N, 4\)"):
        tiny_model.decode(torch.randn(2, 5))
    with pytest.raises(InputError, match="strategy"):
        tiny_model.decode(torch.randn(2, 4), strategy="beam-ish")
    long_sentence = " ".join(["the cat"] * 20)
    with pytest.warns(UserWarning, match="truncated to max_length=16"):
        ids, lengths = tiny_model.tokenize([long_sentence])
    assert lengths.tolist() == [18]
    strict = TextVAE.from_config(tiny_model_config(overlong="error"), tokenizer)
    with pytest.raises(InputError, match="more than max_length=16"):
        strict.encode([long_sentence])


def test_checkpoint_errors_name_the_problem(tmp_path, tiny_model, tokenizer):
    with pytest.raises(CheckpointError, match="model folder not found"):
        load_pretrained(tmp_path / "nowhere")
    folder = tiny_model.save_pretrained(tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        load_pretrained(folder)

    folder = tiny_model.save_pretrained(tmp_path / "m2")
    config = json.loads((folder / "config.json").read_text())
    config["latent"]["size"] = 6
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"do not match.*latent\.proj\.weight"):
        load_pretrained(folder)

    config["latent"]["sise"] = 6
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"unknown config key 'model\.latent\.sise'"):
        load_pretrained(folder)

    folder = tiny_model.save_pretrained(tmp_path / "m3")
    weights = load_file(str(folder / "model.safetensors"))
    weights["extra.weight"] = torch.zeros(2)
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected extra.weight"):
        load_pretrained(folder)

    folder = tiny_model.save_pretrained(tmp_path / "m4")
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot be read as safetensors"):
        load_pretrained(folder)

    folder = tiny_model.save_pretrained(tmp_path / "m5")
    (folder / "tokenizer_config.json").unlink()
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_pretrained(folder)


def test_failed_save_leaves_the_previous_folder_intact(tmp_path, tiny_model, monkeypatch):
    folder = tiny_model.save_pretrained(tmp_path / "m")
    before = (folder / "model.safetensors").read_bytes()

    def broken_save(self, target):
        raise OSError("disk full")

    monkeypatch.setattr(type(tiny_model.tokenizer), "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        tiny_model.save_pretrained(folder)
    assert (folder / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_collate_layout():
    batch = collate([[5, 6, 7], [8]], pad_id=0, bos_id=1, eos_id=2)
    assert batch["input_ids"].tolist() == [[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]]
    assert batch["lengths"].tolist() == [5, 3]


def test_evaluating_restores_the_mode_also_when_the_block_raises(tiny_model, monkeypatch):
    tiny_model.train()
    with pytest.raises(RuntimeError, match="boom"):
        with evaluating(tiny_model) as model:
            assert model is tiny_model and not tiny_model.training and not tiny_model.decoder.training
            raise RuntimeError("boom")
    assert tiny_model.training and tiny_model.decoder.training
    with evaluating(tiny_model.eval()):
        pass
    assert not tiny_model.training  # a model in eval mode stays there
    # the API's eval-mode passes put train mode back when they fail
    tiny_model.train()
    monkeypatch.setattr(type(tiny_model), "posterior", lambda *args: (_ for _ in ()).throw(RuntimeError("boom")))
    batch = batch_of(tiny_model, SENTENCES)
    for call in (lambda: tiny_model.encode(SENTENCES[:2]), lambda: tiny_model.evaluate(batch)):
        with pytest.raises(RuntimeError, match="boom"):
            call()
        assert tiny_model.training
