import pytest
import torch
from torch import nn

from textvae import load_config, load_pretrained
from textvae.config import ConfigError, ModelConfig
from textvae.data.dialogue import collate_dialogues
from textvae.data.pipeline import prepare_data
from textvae.models import CVAE, BaseVAE, InputError
from textvae.training.trainer import train

from .conftest import tiny_model_config
from .test_dialogue_data import jsonl_config, write_jsonl_corpus
from .test_trainer import ROOT


def tiny_cvae_config(**dialogue) -> ModelConfig:
    return tiny_model_config(
        model_type="cvae", dialogue={"context_hidden_size": 10, "prior_hidden_size": 8, "act_embedding_size": 3,
                                     "num_acts": 3, **dialogue},
    )


@pytest.fixture(scope="module")
def dialogue_data(tmp_path_factory):
    return prepare_data(jsonl_config(write_jsonl_corpus(tmp_path_factory.mktemp("dialogues"))), max_length=16)


def batch_of(data, indices=None):
    dataset = data.datasets["train"]
    indices = range(len(dataset)) if indices is None else indices
    return collate_dialogues([dataset[i] for i in indices], 0, 1, 2)


def build(data, **dialogue) -> CVAE:
    torch.manual_seed(0)
    return BaseVAE.from_config(tiny_cvae_config(**dialogue), data.tokenizer)


def test_forward_terms_and_shapes(dialogue_data):
    model = build(dialogue_data, use_act=True)
    batch = batch_of(dialogue_data)
    out = model(batch, step=0)
    b = len(batch["acts"])
    assert out.rec.shape == out.kl.shape == out.bow.shape == out.act_loss.shape == (b,)
    assert out.kl_per_dim.shape == out.z.shape == out.z_mean.shape == (b, 4)
    assert model.decoder_input_size == 10 + 4 + 3
    assert out.act_loss[batch["acts"] < 0].eq(0).all()  # unknown acts cost nothing
    out.loss.backward()
    assert model.act_predictor[0].weight.grad.abs().sum() > 0 and model.bow_head[0].weight.grad.abs().sum() > 0
    assert {"bow", "act_loss", "act_accuracy"} <= out.log_values().keys()


def test_kl_is_zero_when_prior_and_recognition_agree(dialogue_data):
    model = build(dialogue_data)
    batch = batch_of(dialogue_data)
    assert float(model(batch).kl.detach().min()) > 0  # untrained networks disagree
    for layer in (model.latent.proj, model.prior.net[-1]):  # both output N(0, I) whatever their input
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
    assert torch.allclose(model(batch).kl_per_dim, torch.zeros(()), atol=1e-7)
    with torch.no_grad():  # the same mean and spread from a shared bias: still KL 0, now away from N(0, I)
        model.latent.proj.bias.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0, 0.3, 0.3, -0.7, 1.0]))
        model.prior.net[-1].bias.copy_(model.latent.proj.bias)
    assert torch.allclose(model(batch).kl, torch.zeros(()), atol=1e-6)


def test_response_likelihood_ignores_padding_turns_and_tokens(dialogue_data):
    model = build(dialogue_data).eval()
    alone = batch_of(dialogue_data, [0])  # one turn of context, no padding
    padded = batch_of(dialogue_data, [0, 6])  # beside a three-turn context: padding turns and tokens
    assert padded["context_ids"].shape[1] > 1
    garbage = padded["context_ids"].clone()
    garbage[0, 1:] = torch.randint(4, model.tokenizer.vocab_size, garbage[0, 1:].shape)  # padding turns' contents
    padded_garbage = {**padded, "context_ids": garbage}
    c_alone = model.condition(alone)
    assert torch.allclose(model.condition(padded)[:1], c_alone, atol=1e-6)
    assert torch.allclose(model.condition(padded_garbage)[:1], c_alone, atol=1e-6)
    z = torch.randn(1, 4)
    rec = lambda batch: model.decoder_input(model.condition(batch)[:1], z)[0]
    assert torch.allclose(rec(padded_garbage), rec(alone), atol=1e-6)


def test_context_state_does_not_depend_on_later_turns(dialogue_data):
    model = build(dialogue_data).eval()
    batch = batch_of(dialogue_data, [6])  # three turns of context
    utterances = torch.randn(1, 3, model.utterance_encoder.output_size)
    states = model.context_encoder.states(utterances, batch["context_floor"])
    changed = utterances.clone()
    changed[0, 2] += 5.0
    later = model.context_encoder.states(changed, batch["context_floor"])
    assert torch.allclose(states[:, :2], later[:, :2]) and not torch.allclose(states[:, 2], later[:, 2])


def test_bag_of_words_loss_decreases_on_a_tiny_set(dialogue_data):
    model = build(dialogue_data, bow_weight=1.0)
    batch = batch_of(dialogue_data)
    # the least a bag-of-words head can reach: each response's own word frequencies, sum_w n_w log(N / n_w)
    floor = 0.0
    for ids, length in zip(batch["response_ids"], batch["response_lengths"]):
        counts = torch.bincount(ids[1:length]).float()
        counts = counts[counts > 0]
        floor += float((counts * (counts.sum() / counts).log()).sum()) / len(batch["acts"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = float(model(batch).bow.detach().mean())
    for _ in range(60):
        out = model(batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    last = float(model(batch).bow.detach().mean())
    assert last - floor < 0.5 * (first - floor)  # more than half the way to the floor in 60 steps


def test_samples_for_one_context_differ_across_z(dialogue_data):
    model = build(dialogue_data)
    with torch.no_grad():
        model.prior.net[-1].bias[4:] = 3.0  # wide prior: z moves the decoder a lot
    responses = model.respond([["hello there .", "hi , how are you ?"]], num_samples=6, seed=0)
    assert len(responses) == 1 and len(responses[0]) == 6
    assert len(set(responses[0])) > 1
    assert model.respond([["hello there ."]], num_samples=6, seed=0) == model.respond([["hello there ."]], num_samples=6, seed=0)
    with pytest.raises(InputError, match="respond"):
        model.sample(2)


def test_kgcvae_and_label_conditioned_cvae_respond(dialogue_data):
    kg = build(dialogue_data, use_act=True)
    assert len(kg.respond([["where is the station ?"]], num_samples=3, seed=1)[0]) == 3
    labelled = build(dialogue_data, condition="label")
    out = labelled(batch_of(dialogue_data))
    assert torch.isfinite(out.loss)
    assert [len(r) for r in labelled.respond(labels=[0, 2], num_samples=2, seed=0)] == [2, 2]
    with pytest.raises(ConfigError, match="use_act"):
        build(dialogue_data, condition="label", use_act=True)


def test_importance_weights_shape(dialogue_data):
    model = build(dialogue_data, use_act=True).eval()
    batch = batch_of(dialogue_data)
    with torch.no_grad():
        log_w = model.log_importance_weights(batch, 5)
    assert log_w.shape == (5, len(batch["acts"])) and torch.isfinite(log_w).all()


def test_save_and_load_round_trip_exactly(dialogue_data, tmp_path):
    model = build(dialogue_data, use_act=True).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = load_pretrained(tmp_path / "m")
    assert isinstance(loaded, CVAE) and loaded.config == model.config
    theirs = loaded.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name
    context = [["hello there .", "hi , how are you ?"]]
    assert loaded.respond(context, num_samples=3, seed=0, strategy="sample") == model.respond(
        context, num_samples=3, seed=0, strategy="sample"
    )


def tiny_dialogue_run_config(tmp_path, model_type: str, *overrides: str):
    """The default config turned into a tiny ``model_type`` dialogue model on a JSONL corpus written under
    ``tmp_path``, training into ``tmp_path / "run"``; ``overrides`` add the test's own settings."""
    folder = write_jsonl_corpus(tmp_path / "d")
    return load_config(ROOT / "configs" / "default.yaml", [
        "data.corpus=dialogue_jsonl", f"data.data_dir={folder}", f"model.model_type={model_type}",
        "model.encoder.embedding_size=8", "model.encoder.hidden_size=8", "model.decoder.embedding_size=8",
        "model.decoder.hidden_size=8", "model.latent.size=3", "model.dialogue.context_hidden_size=6",
        f"train.output_dir={tmp_path / 'run'}", *overrides,
    ])


def test_trainer_trains_a_tiny_cvae_from_jsonl(tmp_path):
    config = tiny_dialogue_run_config(
        tmp_path, "cvae", "data.batch_size=4", "data.eval_batch_size=8", "model.dialogue.use_act=true",
        "model.dialogue.num_acts=3", "train.max_steps=3", "train.eval_every=2", "train.log_every=1",
    )
    result = train(config, progress=False)
    assert result.state.step == 3 and result.valid["sentences"] == 8  # the validation responses
    model = load_pretrained(result.final_dir)
    assert isinstance(model, CVAE) and len(model.respond([["hello there ."]], num_samples=2)[0]) == 2
