"""The image VAE: shapes for every latent, likelihood and network; its likelihoods against torch.distributions;
the text models' objectives unchanged; a tiny training run through the trainer that lowers the loss; exact resume;
save/load round trip; IW-NLL; the disentanglement metrics with its encoder on sprites."""

import json

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Normal

from textvae import load_pretrained
from textvae.config import Config, DataConfig, ModelConfig, from_dict
from textvae.data.pipeline import prepare_data
from textvae.data.sprites import Sprites
from textvae.errors import ConfigError, InputError
from textvae.evaluation.disentanglement import evaluate_disentanglement, factor_vae_score, model_encode_fn
from textvae.evaluation.likelihood import image_iw_nll
from textvae.models import ImageVAE, build_model
from textvae.training.trainer import train

LATENTS = {
    "gaussian": {"type": "gaussian", "size": 3},
    "gumbel": {"type": "gumbel", "category_sizes": [2, 3]},
    "joint": {"type": "joint", "size": 2, "category_sizes": [3]},
}
SHAPES = {"digits": (1, 8, 8), "frey": (1, 28, 20), "sprites": (1, 64, 64), "colour": (3, 16, 16)}


def image_config(shape=(1, 8, 8), latent="gaussian", likelihood="bernoulli", std=None, **objective) -> ModelConfig:
    c, h, w = shape
    return from_dict(ModelConfig, {
        "model_type": "image_vae",
        "image": {"channels": c, "height": h, "width": w, "hidden_size": 16, "likelihood": likelihood, "gaussian_std": std},
        "latent": LATENTS[latent],
        "objective": objective,
    }, prefix="model.")


def images(n, shape, seed=0):
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", list(SHAPES))
@pytest.mark.parametrize("latent", list(LATENTS))
@pytest.mark.parametrize("likelihood,std", [("bernoulli", None), ("gaussian", None), ("gaussian", 0.2)])
def test_shapes(size, latent, likelihood, std):
    torch.manual_seed(0)
    shape = SHAPES[size]
    model = build_model(image_config(shape, latent, likelihood, std))
    assert model.encoder.convs[0].in_channels == shape[0]
    assert len(model.encoder.convs) == (8 if shape[1:] == (64, 64) else 4)  # conv64's four layers, or small's two
    x = images(3, shape)
    out = model({"images": x}, step=5)
    code, variables = model.latent.code_size, {"gaussian": 3, "gumbel": 2, "joint": 3}[latent]
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert out.rec.shape == out.kl.shape == (3,)
    assert out.kl_per_dim.shape == (3, variables) and out.z.shape == out.z_mean.shape == (3, code)
    assert int(out.num_tokens) == x.numel()
    out.loss.backward()
    assert model.encoder.convs[0].weight.grad.abs().sum() > 0  # the reparameterised gradient reaches the encoder
    assert model.decode(torch.zeros(2, code)).shape == (2, *shape)
    assert model.sample(2, seed=0).shape == (2, *shape)
    assert model.encode(x).shape == (3, code)
    assert model.log_prob_given_z(x, None, torch.zeros(4, 3, code)).shape == (4, 3)


def test_likelihoods_match_torch_distributions():
    torch.manual_seed(0)
    x = (images(2, (1, 8, 8)) > 0.5).float()
    for likelihood, std in (("bernoulli", None), ("gaussian", 0.3), ("gaussian", None)):
        model = build_model(image_config(likelihood=likelihood, std=std))
        z = torch.randn(2, 3)
        output = model.decoder_output(z)
        if likelihood == "bernoulli":
            expected = Bernoulli(logits=output).log_prob(x).flatten(1).sum(-1)
        else:
            scale = std if std is not None else model.log_std.exp()
            expected = Normal(torch.sigmoid(output), scale).log_prob(x).flatten(1).sum(-1)
        assert torch.allclose(model.log_prob_given_z(x, None, z), expected, atol=1e-4)
        # several samples per image at once agree with one at a time
        zs = torch.randn(4, 2, 3)
        stacked = model.log_prob_given_z(x, None, zs)
        assert torch.allclose(stacked, torch.stack([model.log_prob_given_z(x, None, zs[s]) for s in range(4)]), atol=1e-5)


def test_objectives_are_the_text_models():
    torch.manual_seed(0)
    x = images(8, (1, 8, 8))
    base = build_model(image_config())
    for objective in ({"beta": 4.0}, {"capacity": 5.0, "capacity_gamma": 100.0}, {"free_bits": 0.5},
                      {"tcvae": True, "beta": 6.0}):
        model = build_model(image_config(**objective))
        model.load_state_dict(base.state_dict())
        torch.manual_seed(1)
        out = model({"images": x}, step=10)
        assert torch.isfinite(out.loss)
        if objective.get("tcvae"):
            assert torch.allclose(out.mi + out.tc + out.dim_kl, model.latent.log_q(model.posterior(x), out.z)
                                  - model.latent.log_p(out.z), atol=1e-4)
        if "capacity" in objective:
            assert out.capacity == pytest.approx(5.0 * 10 / 10000)
    with pytest.raises(ConfigError, match="tcvae needs model.latent.type 'gaussian'"):
        build_model(image_config(latent="gumbel", tcvae=True))
    gumbel = build_model(image_config(latent="joint", discrete_capacity=2.0))
    assert gumbel({"images": x}, step=0).kl_categorical.shape == (8,)


def test_config_errors():
    unshaped = from_dict(ModelConfig, {"model_type": "image_vae"}, prefix="model.")
    with pytest.raises(ConfigError, match="model.image.channels is not set"):
        build_model(unshaped)
    with pytest.raises(ConfigError, match="multiples of 16"):
        build_model(image_config((1, 28, 28)).__class__(**{**image_config((1, 28, 28)).__dict__,
                                                          "image": image_config((1, 28, 28)).image.__class__(
                                                              channels=1, height=28, width=28, architecture="conv64")}))
    model = build_model(image_config())
    with pytest.raises(InputError, match=r"images must have shape \(N, 1, 8, 8\)"):
        model.encode(np.zeros((2, 7, 7)))
    # uint8 and boolean arrays are read as bytes and as 0/1
    ones = np.ones((1, 8, 8))
    assert torch.equal(model.as_images(ones.astype(np.uint8) * 255), model.as_images(ones.astype(bool)))


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(image_config(latent="joint", likelihood="gaussian"))
    with torch.no_grad():
        model.log_std.fill_(-1.5)
    folder = model.save_pretrained(tmp_path / "model")
    assert not any(p.name.startswith("tokenizer") or p.name == "vocab.json" for p in folder.iterdir())
    loaded = load_pretrained(folder)
    assert isinstance(loaded, ImageVAE) and not loaded.training
    state, again = model.state_dict(), loaded.state_dict()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    x = images(4, (1, 8, 8))
    assert torch.equal(model.encode(x), loaded.encode(x))
    assert torch.equal(ImageVAE.from_pretrained(folder).decode(torch.zeros(1, 5)), model.decode(torch.zeros(1, 5)))


def run_config(tmp_path, name, steps, **train):
    config = Config()
    config.model = image_config(latent="gaussian")
    config.model.image.channels = config.model.image.height = config.model.image.width = None  # from the data
    config.data = DataConfig(corpus="digits", batch_size=32, eval_batch_size=256)
    config.data.images.valid_size = config.data.images.test_size = 64
    tc = config.train
    tc.output_dir, tc.max_steps, tc.learning_rate, tc.cpu_threads = str(tmp_path / name), steps, 3e-3, 1
    tc.log_every, tc.eval_every, tc.checkpoint_every = 10, steps, steps
    for key, value in train.items():
        setattr(tc, key, value)
    return config


def test_training_lowers_the_loss_and_resumes_exactly(tmp_path):
    data = prepare_data(run_config(tmp_path, "x", 1).data)
    straight = train(run_config(tmp_path, "straight", 40), data=data, progress=False)
    log = [json.loads(line) for line in (straight.output_dir / "log.jsonl").read_text().splitlines()]
    losses = [line["loss"] for line in log if line.get("split") == "train"]
    assert len(losses) == 4 and losses[-1] < losses[0] - 3  # nats per image, from about 32
    assert straight.valid["elbo"] > -30
    first = train(run_config(tmp_path, "resumed", 20, checkpoint_every=20), data=data, progress=False)
    assert first.state.step == 20
    resumed = train(run_config(tmp_path, "resumed", 40, checkpoint_every=20), resume=True, data=data, progress=False)
    assert resumed.start_step == 20 and resumed.state.step == 40
    a, b = load_pretrained(straight.final_dir).state_dict(), load_pretrained(resumed.final_dir).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_iw_nll_tightens_the_elbo():
    torch.manual_seed(0)
    model = build_model(image_config(latent="gaussian"))
    x = (images(6, (1, 8, 8)) > 0.5).float()
    nll_1 = image_iw_nll(model, x, num_samples=1, seed=0)
    nll_k = image_iw_nll(model, x, num_samples=64, seed=0, batch_size=4)
    assert nll_1.shape == nll_k.shape == (6,) and nll_k.dtype == torch.float64
    with torch.no_grad():
        elbo = torch.stack([model.evaluate({"images": x}).elbo for _ in range(200)]).mean(0)
    assert (nll_k <= -elbo + 0.05).all()  # the bound with K samples is at least as tight as the ELBO
    assert torch.isfinite(nll_1).all() and (nll_1 > nll_k - 5).all()  # one sample: a single-sample ELBO estimate


def test_metrics_with_the_model_encoder_on_sprites():
    torch.manual_seed(0)
    model = build_model(image_config((1, 64, 64), latent="joint"))
    encode_fn, categorical = model_encode_fn(model)
    assert categorical.tolist() == [False, False, True]
    result = evaluate_disentanglement(encode_fn, Sprites(), categorical=categorical, num_train=120, num_eval=60,
                                      metrics=("mig", "sap"))
    # FactorVAE's global variances from 200 images, not its default 10,000 (seconds of conv64 encoding on one core)
    score = factor_vae_score(encode_fn, Sprites(), 0, 8, 20, 10, num_variance_estimate=200)
    assert 0 <= result["mig"]["score"] <= 1 and 0 <= result["sap"]["score"] <= 1 and 0 <= score["score"] <= 1


def test_training_script(tmp_path, monkeypatch, capsys):
    # the script run in this process (runpy, as `python scripts/train_image_vae.py` runs it): a subprocess would spend
    # most of its time importing torch again
    import runpy
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = root / "scripts" / "train_image_vae.py"
    monkeypatch.setattr(sys, "argv", [
        str(script), "--config", str(root / "configs" / "digits_vae.yaml"), "--max-steps", "4", "--no-progress",
        "--output-dir", str(tmp_path / "run"), "train.cpu_threads=1", "train.eval_every=4", "train.checkpoint_every=4",
        "model.latent.size=2"])
    with pytest.raises(SystemExit) as exit_code:
        runpy.run_path(str(script), run_name="__main__")
    assert exit_code.value.code in (0, None)
    stdout = capsys.readouterr().out
    assert "data: digits (train 1,439, valid 179, test 179 images of 1 x 8 x 8)" in stdout
    assert "test IW-NLL (K=100, 179 images)" in stdout
    for name in ("reconstructions.png", "samples.png", "traversals.png"):
        assert (tmp_path / "run" / "figures" / name).is_file()
    assert (tmp_path / "run" / "checkpoints" / "step_00000004").is_dir()
