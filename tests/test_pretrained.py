"""Pretrained backbones from local folders: the checkpoint's tokenizer, a BERT encoder and a GPT-2 decoder with z
injected as Optimus does, built from tiny random checkpoints written here (hidden size 32, 2 layers)."""

import re
from dataclasses import asdict as dataclasses_asdict
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from textvae import BaseVAE, CheckpointError, TextVAE, load_pretrained
from textvae.config import Config, ConfigError, ModelConfig, TokenizerConfig, from_dict
from textvae.data.batching import collate
from textvae.data.tokenization import PretrainedTokenizer, TokenizerError, load_tokenizer, train_tokenizer
from textvae.modules.decoders import PRETRAINED_Z_MODES, RecomputingDecoder

from .conftest import SENTENCES, fit

ROOT = Path(__file__).resolve().parents[1]


def write_tiny_bert(folder: Path) -> None:
    """A BERT-style checkpoint: WordPiece tokenizer trained on SENTENCES, 2 layers of width 32, random weights."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    backend.train_from_iterator(SENTENCES, trainers.WordPieceTrainer(vocab_size=90, special_tokens=specials))
    cls, sep = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tokenizer = BertTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(folder)


def write_tiny_gpt2(folder: Path) -> None:
    """A GPT-2-style checkpoint: byte-level BPE with <|endoftext|> as its only special token, 2 layers of width 32."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(SENTENCES, trainer)
    tokenizer = GPT2TokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    end = tokenizer.eos_token_id
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=64,
                        bos_token_id=end, eos_token_id=end)
    GPT2LMHeadModel(config).save_pretrained(folder)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict:
    from transformers.utils import logging

    logging.disable_progress_bar()
    root = tmp_path_factory.mktemp("checkpoints")
    write_tiny_bert(root / "bert")
    write_tiny_gpt2(root / "gpt2")
    return {"bert": str(root / "bert"), "gpt2": str(root / "gpt2")}


def pretrained_tokenizer(path: str) -> PretrainedTokenizer:
    return train_tokenizer([], TokenizerConfig(type="pretrained", path=path))


def optimus_config(checkpoints, z_mode="memory+embedding", encoder=None, decoder=None) -> ModelConfig:
    """BERT encoder, GPT-2 decoder with z as memory and embedding, as Optimus (with tiny sizes)."""
    return from_dict(ModelConfig, {
        "encoder": {"type": "pretrained", "path": checkpoints["bert"], "pooling": "first", **(encoder or {})},
        "decoder": {"type": "pretrained", "path": checkpoints["gpt2"], "z_mode": z_mode, "memory_slots": 2,
                    **(decoder or {})},
        "latent": {"size": 4},
        "max_length": 40,
    }, prefix="model.")


def optimus(checkpoints, seed=0, **kw) -> TextVAE:
    torch.manual_seed(seed)
    return TextVAE.from_config(optimus_config(checkpoints, **kw), pretrained_tokenizer(checkpoints["gpt2"]))


def batch_of(model, sentences):
    ids, lengths = model.tokenize(sentences)
    return {"input_ids": ids, "lengths": lengths}


# ---------------------------------------------------------------- the checkpoint's tokenizer


def test_pretrained_tokenizer_keeps_the_checkpoints_ids_and_round_trips(checkpoints, tmp_path):
    gpt2 = pretrained_tokenizer(checkpoints["gpt2"])
    end = gpt2.hf.convert_tokens_to_ids("<|endoftext|>")
    assert gpt2.vocab_size == len(gpt2.hf)
    assert (gpt2.pad_id, gpt2.bos_id, gpt2.eos_id, gpt2.unk_id) == (end, end, end, end)  # as GPT-2 was trained
    bert = pretrained_tokenizer(checkpoints["bert"])
    assert [bert.id_to_token(i) for i in (bert.pad_id, bert.bos_id, bert.eos_id, bert.unk_id)] == [
        "[PAD]", "[CLS]", "[SEP]", "[UNK]"]
    assert gpt2.batch_decode(gpt2.batch_encode(SENTENCES)) == SENTENCES  # byte-level BPE is exact
    for tok in (gpt2, bert):
        ids = tok.batch_encode(SENTENCES)
        assert tok.batch_encode(tok.batch_decode(ids)) == ids  # BERT's decoder joins "mat ." to "mat."
        row = collate(ids[:1], tok.pad_id, tok.bos_id, tok.eos_id)["input_ids"][0]  # <bos> .. <eos>, as models read it
        assert tok.decode(row) == tok.decode(ids[0])
        assert tok.eos_id not in tok.encode(f"a {tok.id_to_token(tok.eos_id)} b")  # special strings are plain text
        tok.save(tmp_path / tok.hf.name_or_path.split("/")[-1])
        loaded = load_tokenizer(tmp_path / tok.hf.name_or_path.split("/")[-1])
        assert isinstance(loaded, PretrainedTokenizer) and loaded.batch_encode(SENTENCES) == ids
        assert (loaded.pad_id, loaded.bos_id, loaded.eos_id, loaded.unk_id) == (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id)


def test_pretrained_tokenizer_errors_name_what_is_missing(tmp_path):
    with pytest.raises(TokenizerError, match="data.tokenizer.path is not set"):
        train_tokenizer([], TokenizerConfig(type="pretrained"))
    with pytest.raises(TokenizerError, match="tokenizer folder not found"):
        train_tokenizer([], TokenizerConfig(type="pretrained", path=str(tmp_path / "nowhere")))
    with pytest.raises(TokenizerError, match="no tokenizer files .*tokenizer.json"):
        train_tokenizer([], TokenizerConfig(type="pretrained", path=str(tmp_path)))


# ---------------------------------------------------------------- BERT encoder + GPT-2 decoder (Optimus)


def test_optimus_pair_trains_and_round_trips_without_the_original_checkpoints(checkpoints, tmp_path):
    local = {name: str(shutil.copytree(path, tmp_path / name)) for name, path in checkpoints.items()}
    model = optimus(local)
    assert model.encoder.source_tokenizer is not None  # BERT re-tokenizes the text of GPT-2's ids
    batch = batch_of(model, SENTENCES)
    losses = fit(model, batch, steps=6, lr=3e-3)
    assert losses[-1] < losses[0]
    model.eval()
    model.save_pretrained(tmp_path / "model")
    for name in local:
        shutil.rmtree(local[name])  # the model folder holds everything it needs
    folder = tmp_path / "model"
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "tokenizer_config.json",
                                                  "hf_tokenizer", "encoder_backbone", "decoder_backbone"}
    loaded = load_pretrained(folder)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    z = torch.randn(len(SENTENCES), 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.posterior(batch["input_ids"], batch["lengths"]).loc,
                           model.posterior(batch["input_ids"], batch["lengths"]).loc)
        assert torch.equal(loaded.reconstruction_nll(batch["input_ids"], batch["lengths"], z),
                           model.reconstruction_nll(batch["input_ids"], batch["lengths"], z))
    assert loaded.generate(z, max_length=8) == model.generate(z, max_length=8)
    assert loaded.reconstruct(SENTENCES[:2]) == model.reconstruct(SENTENCES[:2])


@pytest.mark.parametrize("z_mode", PRETRAINED_Z_MODES)
def test_every_z_mode_carries_gradients_to_the_encoder(checkpoints, z_mode):
    model = optimus(checkpoints, z_mode=z_mode).train()
    output = model(batch_of(model, SENTENCES))
    output.rec.sum().backward()  # the reconstruction term alone, not the KL, must reach the encoder
    grad = model.encoder.backbone.get_input_embeddings().weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_gpt2_decoder_is_causal_and_its_cache_equals_rerunning_it(checkpoints):
    model = optimus(checkpoints).eval()
    decoder, tok = model.decoder, model.tokenizer
    ids = model.tokenize(SENTENCES[:3])[0][:, :-1]
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        hidden = decoder(ids, z)
        changed = ids.clone()
        changed[:, 4] = tok.encode(" zebra")[0]
        after = decoder(changed, z)
        assert torch.allclose(after[:, :4], hidden[:, :4], atol=1e-6)
        assert not torch.allclose(after[:, 4], hidden[:, 4], atol=1e-4)
        full, state = decoder.project(hidden), decoder.initial_state(z)
        for t in range(ids.size(1)):
            logits, state = decoder.step(ids[:, t], z, state)
            assert torch.allclose(logits, full[:, t], atol=1e-5)
    with torch.no_grad():  # sharper, z-dependent choices
        decoder.lm.get_output_embeddings().weight.mul_(8)
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(2)) * 3
    cached = {s: model.generate(z, strategy=s, max_length=8) for s in ("greedy", "beam")}
    model.decoder = RecomputingDecoder(decoder)
    for strategy, rows in cached.items():
        assert model.generate(z, strategy=strategy, max_length=8) == rows


# ---------------------------------------------------------------- tokenizers shared or not, mixed pairs


def test_bert_encoder_reads_its_own_ids_or_retokenizes_to_the_same_state(checkpoints):
    torch.manual_seed(0)
    bert_tok = pretrained_tokenizer(checkpoints["bert"])
    config = optimus_config(checkpoints, encoder={"pooling": "mean"},
                            decoder={"type": "lstm", "z_mode": "init", "embedding_size": 8, "hidden_size": 8})
    own = TextVAE.from_config(config, bert_tok).eval()  # pretrained encoder with an LSTM decoder
    assert own.encoder.source_tokenizer is None
    ids, lengths = own.tokenize(SENTENCES)
    assert ids[0, 0] == bert_tok.hf.cls_token_id
    with torch.no_grad():
        together = own.encoder(ids, lengths)
        for i in (0, 4):  # a padded sentence encodes as the sentence alone
            alone = own.tokenize(SENTENCES[i])
            assert torch.allclose(together[i], own.encoder(*alone)[0], atol=1e-5)
        # beside GPT-2's tokenizer the same encoder decodes GPT-2 ids to text and re-tokenizes: the same states
        other = optimus(checkpoints, encoder={"pooling": "mean"}).eval()
        gpt2_ids, gpt2_lengths = other.tokenize(SENTENCES)
        assert torch.allclose(other.encoder(gpt2_ids, gpt2_lengths), together, atol=1e-5)



@pytest.mark.parametrize("model_type", ["cvae", "vhred"])
def test_dialogue_models_give_their_encoder_and_decoder_the_tokenizer(checkpoints, tokenizer, model_type):
    # as the sentence VAE: a BERT utterance encoder beside a word tokenizer re-tokenizes, beside BERT's reads its ids
    torch.manual_seed(0)
    dialogue = {"condition": "context", "context_hidden_size": 8, "prior_hidden_size": 8}
    tiny = {"embedding_size": 8, "hidden_size": 8}
    config = from_dict(ModelConfig, {
        "model_type": model_type, "dialogue": dialogue, "latent": {"size": 4}, "max_length": 40,
        "encoder": {"type": "pretrained", "path": checkpoints["bert"], "pooling": "mean"},
        "decoder": {"type": "lstm", "z_mode": "init", **tiny},
    }, prefix="model.")
    words = BaseVAE.from_config(config, tokenizer).eval()
    assert words.utterance_encoder.source_tokenizer is tokenizer
    bert = BaseVAE.from_config(config, pretrained_tokenizer(checkpoints["bert"])).eval()
    assert bert.utterance_encoder.source_tokenizer is None
    with torch.no_grad():
        assert torch.allclose(words.utterance_encoder(*words.tokenize(SENTENCES)),
                              bert.utterance_encoder(*bert.tokenize(SENTENCES)), atol=1e-5)
    # a GPT-2 decoder beside another checkpoint's tokenizer is refused, as the sentence VAE refuses it
    gpt2 = from_dict(ModelConfig, {**dataclasses_asdict(config), "decoder": {
        "type": "pretrained", "path": checkpoints["gpt2"], "z_mode": "memory+embedding", "memory_slots": 2}}, prefix="model.")
    with pytest.raises(ConfigError, match="set data.tokenizer"):
        BaseVAE.from_config(gpt2, pretrained_tokenizer(checkpoints["bert"]))


def test_scratch_transformer_encoder_with_a_gpt2_decoder(checkpoints, tmp_path):
    tiny = {"embedding_size": 16, "hidden_size": 16, "num_layers": 1, "num_heads": 2, "feedforward_size": 16}
    model = optimus(checkpoints, encoder={"type": "transformer", "path": None, **tiny})
    output = model(batch_of(model, SENTENCES))
    output.loss.backward()
    assert model.encoder.embedding.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path / "m")
    assert not (tmp_path / "m" / "encoder_backbone").exists()
    assert load_pretrained(tmp_path / "m").sample(2, seed=0) == model.eval().sample(2, seed=0)


def test_a_pretrained_decoder_needs_its_checkpoints_tokenizer(checkpoints, tokenizer):
    with pytest.raises(ConfigError, match="set data.tokenizer to .*type: pretrained"):
        TextVAE.from_config(optimus_config(checkpoints), tokenizer)  # a word tokenizer
    with pytest.raises(ConfigError, match="set data.tokenizer"):
        TextVAE.from_config(optimus_config(checkpoints), pretrained_tokenizer(checkpoints["bert"]))


# ---------------------------------------------------------------- missing files


def test_a_checkpoint_folder_missing_a_file_names_it(checkpoints, tmp_path, tokenizer):
    broken = Path(shutil.copytree(checkpoints["bert"], tmp_path / "bert"))
    config = {"encoder": {"type": "pretrained", "path": str(broken)}, "latent": {"size": 4}, "max_length": 16}
    build = lambda: TextVAE.from_config(from_dict(ModelConfig, config, prefix="model."), tokenizer)  # noqa: E731
    (broken / "config.json").unlink()
    with pytest.raises(CheckpointError, match=f"checkpoint folder {re.escape(str(broken))} has no config.json"):
        build()
    shutil.copy(Path(checkpoints["bert"]) / "config.json", broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no weights file .*model.safetensors"):
        build()
    shutil.copy(Path(checkpoints["bert"]) / "model.safetensors", broken)
    (broken / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="no tokenizer files"):
        build()
    config["encoder"]["path"] = str(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        build()
    config["encoder"]["path"] = None
    with pytest.raises(ConfigError, match="model.encoder.path is not set"):
        build()


# ---------------------------------------------------------------- the training loop and the README


def test_the_trainer_runs_a_pretrained_pair_from_config(checkpoints, tmp_path):
    from textvae.training.trainer import train

    config = Config.from_dict({
        "model": {"encoder": {"type": "pretrained", "path": checkpoints["bert"]},
                  "decoder": {"type": "pretrained", "path": checkpoints["gpt2"], "z_mode": "memory+embedding"},
                  "latent": {"size": 4}, "max_length": 60},
        "data": {"synthetic_size": 120, "batch_size": 8, "eval_batch_size": 32, "overlong": "truncate",
                 "tokenizer": {"type": "pretrained", "path": checkpoints["gpt2"]}},
        "train": {"output_dir": str(tmp_path / "run"), "max_steps": 3, "eval_every": 3, "checkpoint_every": 3,
                  "log_every": 1},
    })
    result = train(config, progress=False)
    model = load_pretrained(result.final_dir)
    assert isinstance(model.tokenizer, PretrainedTokenizer)
    assert len(model.sample(2, seed=0)) == 2


def test_the_readme_pretrained_config_is_valid(checkpoints):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Transformer and pretrained backbones", 1)[1].split("\n## ", 1)[0]
    snippets = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    assert snippets, "the README section shows a yaml config"
    for snippet in snippets:
        text = snippet.replace("/models/bert-base-uncased", checkpoints["bert"]).replace("/models/gpt2", checkpoints["gpt2"])
        config = Config.from_dict(yaml.safe_load(text))
        if config.model.encoder.type == "pretrained" or config.model.decoder.type == "pretrained":
            tok = train_tokenizer([], config.data.tokenizer)
            with torch.random.fork_rng():
                TextVAE.from_config(config, tok)
