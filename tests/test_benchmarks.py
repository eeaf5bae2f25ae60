"""The benchmark scripts' experiment definitions stay valid (their full runs need ../shared data and hours)."""

import importlib.util
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from textvae.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "scripts" / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_ptb_row_is_a_valid_config_with_a_budget_scaled_schedule():
    ptb = load_script("ptb")
    rows = ptb.variants(400)
    assert {"lstm_lm", "annealing", "cyclical", "free_bits", "ae_free_bits", "capacity", "word_dropout"} <= set(rows)
    for name, (config_file, overrides) in rows.items():
        config = load_config(ptb.CONFIGS / config_file, [*overrides, "train.max_steps=400"])
        objective = config.model.objective
        assert config.model.latent.size == 32 and config.model.decoder.hidden_size == 256, name
        assert (config.model.decoder.type == "transformer") == (name == "transformer"), name
        if objective.kl_schedule == "linear" and config.model.latent.type != "none":
            assert objective.kl_warmup_steps == 100, name
        if objective.kl_schedule == "cyclical":
            assert objective.kl_total_steps == 400, name
    assert load_config(ptb.CONFIGS / rows["lstm_lm"][0], rows["lstm_lm"][1]).model.latent.type == "none"
    for target in (0.5, 0.25):  # ae_free_bits' target, in both recipes
        for row in (ptb.variants(400, target)["ae_free_bits"], ptb.paper_variants(400, target)["ae_free_bits"]):
            assert load_config(ptb.CONFIGS / row[0], row[1]).model.objective.free_bits == target
    assert ptb.variants(400, 0.25)["free_bits"] == rows["free_bits"]  # the other rows do not depend on it


def test_ptb_paper_rows_train_the_same_objectives_the_papers_way():
    ptb = load_script("ptb")
    adam, paper = ptb.variants(400), ptb.paper_variants(400)
    assert set(paper) == set(adam) - {"transformer"}
    for name, (config_file, overrides) in paper.items():
        config = load_config(ptb.CONFIGS / config_file, [*overrides, "train.max_steps=400"])
        ours = load_config(ptb.CONFIGS / adam[name][0], [*adam[name][1], "train.max_steps=400"])
        train = config.train
        assert (train.optimizer, train.momentum, train.lr_schedule, config.model.init) == ("sgd", 0.0, "plateau", "uniform")
        assert train.learning_rate == (1.0 if name == "lstm_lm" else 0.5), name
        assert train.eval_every == 40 and train.plateau_start == 200, name  # 10 validations; no decay in the first half
        # the reference code's output layer has no bias and its batches one sentence length each; the rest is the row's
        assert not config.model.decoder.output_bias and config.data.same_length_batches, name
        assert ours.model.decoder.output_bias and not ours.data.same_length_batches, name
        decoder = replace(config.model.decoder, output_bias=True)
        assert config.model.latent == ours.model.latent and decoder == ours.model.decoder, name
        if name != "lstm_lm":  # the row's objective, a linear warm-up capped at a quarter of the budget
            objective, expected = asdict(config.model.objective), asdict(ours.model.objective)
            if expected["kl_schedule"] != "linear":  # unused by the other schedules
                del objective["kl_warmup_steps"], expected["kl_warmup_steps"]
            assert objective == expected, name
    # at the papers' budget the paper configs' epoch-based settings stand
    long = ptb.paper_variants(200000)["annealing"][1]
    assert "train.eval_every=1359" in long and "model.objective.kl_warmup_steps=13146" in long


def test_ptb_table_lists_our_rows_beside_the_published_ones_with_the_gaps():
    ptb = load_script("ptb")
    rows = {
        "lstm_lm (paper)": {"row": "lstm_lm", "recipe": "paper", "ppl": 110.0, "mi": None, "au": None, "kl": 0.0,
                            "nll": 103.0, "elbo_nll": 103.0},
        "annealing": {"row": "annealing", "recipe": "adam", "ppl": 120.5, "mi": 1.5, "au": 7, "kl": 2.0, "nll": 105.0,
                      "elbo_nll": 106.25},
        "annealing (paper)": {"row": "annealing", "recipe": "paper", "ppl": 115.0, "mi": 0.5, "au": 2, "kl": 1.0,
                              "nll": 104.0, "elbo_nll": 104.5},
    }
    ptb.add_gaps(rows)
    assert rows["annealing (paper)"]["lm_gap"] == 1.0 and rows["annealing (paper)"]["elbo_gap"] == 0.5
    assert rows["annealing"]["lm_nll"] is None and rows["annealing"]["elbo_gap"] == 1.25  # no adam LM row was run
    table = ptb.format_table({"rows": rows})
    assert "| annealing | 120.50 | 1.50 | 7 | 2.00 | 105.00 | – | – | 1.25 | 101.40 / 0.00 / 0 / 0.00 / 101.20 |" in table
    assert "| annealing (paper) | 115.00 | 0.50 | 2 | 1.00 | 104.00 | 103.00 | 1.00 | 0.50 | 101.40 /" in table
    assert "| lstm_lm (paper) | 110.00 | – | – | 0.00 | 103.00 | 103.00 | 0.00 | 0.00 | 100.47 /" in table
    assert "lstm_lm (not run)" not in table and "transformer (not run)" in table


def test_throughput_times_both_steps_and_counts_lstm_flops(tmp_path):
    """The throughput benchmark runs the library step and the bare step, and its FLOP count is the textbook one."""
    import numpy as np

    from textvae.config import load_config
    from textvae.data.pipeline import prepare_data

    throughput = load_script("throughput")
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text("the cat sat on the mat\na dog ran home\nthe bird sang\n" * 8)
    overrides = [f"data.data_dir={tmp_path}", "model.encoder.hidden_size=8", "model.encoder.embedding_size=8",
                 "model.decoder.hidden_size=8", "model.decoder.embedding_size=8", "model.latent.size=4"]
    config = load_config(throughput.PTB_CONFIG, overrides)
    data = prepare_data(config.data, config.model.max_length, overlong=config.model.overlong)
    vocab = data.tokenizer.vocab_size
    # per word: encoder LSTM over n + 2 tokens, decoder LSTM (input 8 + z 4) and output layer over n + 1, x 3
    words = np.array([5])
    expected = 3 * (7 * 2 * 4 * 8 * 16 + 2 * 2 * 4 * 8 + 6 * (2 * 4 * 8 * 20 + 2 * 8 * vocab) + 2 * 4 * 8)
    assert throughput.flops_per_sentence(words, config.model, vocab) == expected
    ours = throughput.time_textvae(data, config, batch_size=4, steps=3, warmup=1, device=throughput.torch.device("cpu"),
                                   repeats=2)
    bare = throughput.time_bare(vocab, 4, 5, 3, 1, throughput.torch.device("cpu"), config, repeats=2)
    for result in (ours, bare):
        assert len(result["seconds_all"]) == 2 and result["seconds"] == min(result["seconds_all"]) > 0
        assert result["tokens"] > 0 and result["flops"] > 0
    assert bare["tokens"] == 3 * 4 * 6
    epoch = throughput.run_epoch(config, data, tmp_path / "epoch", throughput.PTB_CONFIG)
    assert epoch["steps"] == 1 and epoch["tokens"] > 0 and epoch["training_tokens_per_s"] > 0


def test_output_layer_benchmark_writes_both_timings(tmp_path):
    import json

    output_layer = load_script("output_layer")
    out = tmp_path / "layer.json"
    assert output_layer.main(["--tokens", "9", "16", "--hidden", "8", "--vocab", "50", "--repeats", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["tokens"] for r in rows] == [9, 16]
    assert all(r["plain_s"] > 0 and r["fused_s"] > 0 and r["ratio"] == r["fused_s"] / r["plain_s"] for r in rows)


def test_iw_speed_implementations_agree_and_count_flops(tokenizer):
    """The IW speed benchmark's three paths score the same NLL: exactly the library's for the previous path (same
    samples), and the exact likelihood for He et al.'s loop on a model whose q is the prior and whose decoder
    ignores z; its FLOP count is encoder once plus decoder per sample."""
    import numpy as np
    import torch

    from textvae.evaluation.likelihood import importance_weighted_nll

    from .conftest import SENTENCES
    from .test_likelihood import exact_nll, ignoring_z, informative

    iw_speed = load_script("iw_speed")
    model = informative(tokenizer)
    ours = iw_speed.library(model, SENTENCES, 7)
    assert torch.allclose(iw_speed.previous(model, SENTENCES, 7), ours, atol=1e-4)
    assert torch.equal(ours, importance_weighted_nll(model, SENTENCES, 7, seed=0))
    exact = ignoring_z(tokenizer)
    assert torch.allclose(iw_speed.li_et_al(exact, SENTENCES, 5, chunk=2), exact_nll(exact, SENTENCES), atol=1e-4)
    words = np.array([len(ids) for ids in model.token_ids(SENTENCES)], dtype=np.float64)
    c = model.config
    encoder = np.sum((words + 2) * 2 * 4 * 12 * (8 + 12) + 2 * 2 * 4 * 12)
    decoder = np.sum((words + 1) * (2 * 4 * 12 * (8 + 4 + 12) + 2 * 12 * tokenizer.vocab_size) + 2 * 4 * 12)
    assert c.encoder.hidden_size == 12 and c.latent.size == 4 and c.decoder.z_mode == "init+concat"
    assert iw_speed.forward_flops(model, SENTENCES, 3) == encoder + 3 * decoder


def test_iw_speed_times_in_slices_against_the_rate_around_each(tokenizer):
    """The interleaved timing cuts the sentences, in the library's evaluation order (by length), into runs of whole
    evaluation batches of at least the token target (the last may hold fewer), and scores the FLOPs against each
    slice's time weighted by the mean of the probes around it; per-sentence NLLs come back in sentence order."""
    import torch

    from .conftest import SENTENCES
    from .test_likelihood import informative

    iw_speed = load_script("iw_speed")
    model = informative(tokenizer)
    sentences = list(SENTENCES)
    lengths = [len(ids) + 1 for ids in model.token_ids(sentences)]
    pieces = iw_speed.slices(model, sentences, 3, tokens=20, batch_size=2)
    flat = [i for piece in pieces for i in piece]
    assert sorted(flat) == list(range(len(sentences)))
    assert [lengths[i] for i in flat] == sorted(lengths)  # the evaluation order
    for piece in pieces[:-1]:
        assert len(piece) % 2 == 0 and 3 * sum(lengths[i] for i in piece) >= 20
        assert 3 * sum(lengths[i] for i in piece[:-2]) < 20  # one batch fewer would fall short

    probes = iter([100.0, 300.0, 200.0, 200.0])
    clock = iter([0.0, 1.0, 10.0, 13.0, 20.0, 21.0])  # slices of 1, 3 and 1 s
    calls = []

    def fn(model, piece, k):
        calls.append(list(piece))
        return torch.tensor([float(sentences.index(s)) for s in piece], dtype=torch.float64)

    class Peak:
        def after_run(self):
            return 400.0

    target = 3 * sum(lengths) // 3  # about a third of the tokens at 3 samples
    three = iw_speed.slices(model, sentences, 3, tokens=target, batch_size=1)
    assert len(three) == 3
    real_counter = iw_speed.time.perf_counter
    iw_speed.time.perf_counter = lambda: next(clock)
    try:
        run = iw_speed.timed(fn, model, sentences, 3, 1000.0, Peak(), lambda: next(probes), slice_tokens=target,
                             batch_size=1)
    finally:
        iw_speed.time.perf_counter = real_counter
    assert calls == [[sentences[i] for i in piece] for piece in three] and run["slices"] == 3
    assert run["seconds"] == 5.0
    assert torch.equal(run["per_sentence"], torch.arange(len(sentences), dtype=torch.float64))
    # slice rates: (100 + 300) / 2, (300 + 200) / 2, (200 + 200) / 2 over 1, 3 and 1 s
    assert run["utilisation"] == 1000.0 / (1 * 200.0 + 3 * 250.0 + 1 * 200.0)
    assert run["utilisation_peak"] == 1000.0 / 5.0 / 400.0


def test_iw_speed_rate_trace_gives_one_rate_per_second():
    import torch

    iw_speed = load_script("iw_speed")
    trace = iw_speed.rate_trace(2.5, torch.device("cpu"), size=128)
    assert len(trace) == 2 and all(1e6 < r < 1e13 for r in trace)  # FLOP/s of a CPU


def test_dsentences_dci_max_values_leaves_out_only_the_larger_factors():
    dsentences = load_script("dsentences")
    sizes = dsentences.FACTORS_NUM_VALUES
    assert dsentences.dci_factor_indices(None) == list(range(len(sizes)))
    small = dsentences.dci_factor_indices(3)
    assert len(small) == 8 and all(sizes[k] <= 3 for k in small) and sizes.index(1100) not in small
    assert dsentences.dci_factor_indices(2) == [k for k, n in enumerate(sizes) if n == 2]


def test_ptb_table_resumes_keeping_finished_rows_and_each_recipe_gets_the_same_epochs(tmp_path, monkeypatch):
    import json

    ptb = load_script("ptb")
    words = "the cat sat on a mat dog ran far".split()
    for split, count in (("train", 40), ("valid", 6), ("test", 4)):
        lines = [" ".join(words[(i + j) % len(words)] for j in range(2 + i % 4)) for i in range(count)]
        (tmp_path / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    out, runs = tmp_path / "results.json", tmp_path / "runs"
    argv = ["--data-dir", str(tmp_path), "--rows", "lstm_lm", "--recipe", "both", "--epochs", "0.5",
            "--iw-samples", "2", "--runs", str(runs), "--out", str(out)]
    ptb.main(argv)
    first = json.loads(out.read_text())
    # 40 sentences of 2-5 words at batch 32: 2 length-bucketed batches an epoch, 4 of one length each (paper)
    assert first["steps"] == {"adam": 1, "paper": 2}
    assert {run["steps_trained"] for run in first["runs"].values()} == {1, 2}
    assert set(first["rows"]) == {"lstm_lm", "lstm_lm (paper)"}

    def not_again(*args, **kwargs):
        raise AssertionError("a finished row was trained again")

    monkeypatch.setattr(ptb, "run_variant", not_again)
    ptb.main([*argv, "--resume"])
    assert json.loads(out.read_text())["rows"] == first["rows"]
    # a table run as two processes: each file holds one recipe's row; --merge puts them in one table, training nothing
    for recipe, key in (("adam", "lstm_lm"), ("paper", "lstm_lm (paper)")):
        part = {**first, "rows": {key: first["rows"][key]}, "runs": {key: first["runs"][key]}}
        part["rows"][key] = {**part["rows"][key], "lm_nll": None, "lm_gap": None}  # as a file without its LM row
        (tmp_path / f"{recipe}.json").write_text(json.dumps(part))
    merged = tmp_path / "merged.json"
    ptb.main([*argv[:-1], str(merged), "--resume", "--merge", str(tmp_path / "adam.json"), str(tmp_path / "paper.json")])
    rows = json.loads(merged.read_text())["rows"]
    assert set(rows) == {"lstm_lm", "lstm_lm (paper)"}
    assert rows["lstm_lm (paper)"]["lm_nll"] == first["rows"]["lstm_lm (paper)"]["nll"]  # gaps computed again
    assert rows["lstm_lm"]["lm_gap"] == 0.0
    with pytest.raises(SystemExit):
        ptb.main([*argv, "--resume", "--merge", str(tmp_path / "nowhere.json")])
    with pytest.raises(SystemExit):
        ptb.main([*argv, "--merge", str(tmp_path / "adam.json")])  # without --resume


def test_ptb_ae_free_bits_spends_the_rows_budget_on_both_stages(tmp_path, monkeypatch):
    import json

    import torch
    from safetensors.torch import load_file

    import textvae.training.trainer as trainer

    ptb = load_script("ptb")
    assert [ptb.ae_stage_steps(steps, 0.375) for steps in (1, 2, 8, 10536)] == [1, 1, 3, 3951]
    assert ptb.ae_stage_steps(4, 0.9) == 3  # one step is always left for the free-bits stage
    words = "the cat sat on a mat dog ran far".split()
    for split, count in (("train", 256), ("valid", 6), ("test", 4)):
        lines = [" ".join(words[(i + j) % len(words)] for j in range(2 + i % 4)) for i in range(count)]
        (tmp_path / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    started = []  # the weights each init_from run starts from, right after the trainer loads them

    def recording_load(model, folder, modules=()):
        real_load(model, folder, modules)
        started.append({name: tensor.clone() for name, tensor in model.state_dict().items()})

    real_load = trainer.load_weights
    monkeypatch.setattr(trainer, "load_weights", recording_load)
    out = tmp_path / "results.json"
    ptb.main(["--data-dir", str(tmp_path), "--rows", "ae_free_bits", "--epochs", "1", "--iw-samples", "2",
              "--runs", str(tmp_path / "runs"), "--out", str(out)])
    result = json.loads(out.read_text())
    run = result["runs"]["ae_free_bits"]
    assert result["steps"] == {"adam": 8} and run["steps"] == 8
    assert (run["pretrain_steps"], run["steps_trained"]) == (3, 8)  # 3 autoencoder steps + 5 free-bits steps
    ae_state = json.loads(next((tmp_path / "runs" / "ae_pretrain").rglob("trainer_state.json")).read_text())
    assert ae_state["step"] == 3
    fb_state = json.loads(next((tmp_path / "runs" / "ae_free_bits").rglob("trainer_state.json")).read_text())
    # the row's training time: both stages' as the trainer counts them (each summed over resumes)
    assert run["train_seconds"] == pytest.approx(ae_state["train_seconds"] + fb_state["train_seconds"], abs=0.1)
    # the free-bits stage starts from the autoencoder's whole posterior q(z|x) (encoder and mu/logvar layer) and a
    # fresh decoder
    autoencoder = load_file(str(tmp_path / "runs" / "ae_pretrain" / "final" / "model.safetensors"))
    (start,) = started
    assert start.keys() == autoencoder.keys()
    for name in start:
        assert torch.equal(start[name], autoencoder[name]) == (not name.startswith("decoder.")), name
    with pytest.raises(SystemExit):
        ptb.main(["--data-dir", str(tmp_path), "--ae-share", "1.0"])
    # the free-bits target: the default 0.5 was trained and recorded; --resume keeps the row only for that target
    assert run["free_bits"] == 0.5
    assert "free_bits: 0.5" in (tmp_path / "runs" / "ae_free_bits" / "config.yaml").read_text()
    retrained = []

    def record_target(name, args, *rest, **kwargs):
        retrained.append(args.ae_free_bits)
        raise KeyboardInterrupt  # stop before training: the decision to train again is what is tested

    monkeypatch.setattr(ptb, "run_variant", record_target)
    argv = ["--data-dir", str(tmp_path), "--rows", "ae_free_bits", "--epochs", "1", "--iw-samples", "2",
            "--runs", str(tmp_path / "runs"), "--out", str(out), "--resume"]
    ptb.main([*argv, "--ae-free-bits", "0.5"])
    assert retrained == []
    with pytest.raises(KeyboardInterrupt):
        ptb.main([*argv, "--ae-free-bits", "0.25"])
    assert retrained == [0.25]
    for bad in ("0", "-1", "nan"):
        with pytest.raises(SystemExit):
            ptb.main([*argv, "--ae-free-bits", bad])


def test_image_benchmark_rows_and_a_smoke_run(tmp_path):
    images = load_script("images")
    assert {"vae", "beta_vae_2", "beta_vae_16", "annealed_vae", "beta_tcvae", "discrete", "joint"} <= set(images.MODELS)
    for name in images.MODELS:  # every row builds on sprites' shape
        images.model_config(name, {"channels": 1, "height": 64, "width": 64}, 1000)
    assert images.PUBLISHED["factor_vae"]["beta_vae"] == 0.84 and images.published_row("beta_vae_8")["mig"] == 0.21
    results = images.main(["--smoke", "--models", "beta_tcvae", "--threads", "1", "--runs", str(tmp_path / "runs"),
                           "--json", str(tmp_path / "out.json")])
    assert set(results["sprites"]) == {"ceiling", "beta_tcvae"} and results["sprites"]["beta_tcvae"]["steps"] == 2
    assert all(0 <= results["sprites"][row][m]["score"] <= 1 for row in ("ceiling", "beta_tcvae")
               for m in ("mig", "sap"))
    assert "dci" not in results["sprites"]["ceiling"]  # the smoke budget skips the slow metrics
    assert set(results["digits"]) == {"beta_tcvae"} and np.isfinite(results["digits"]["beta_tcvae"]["iw_nll"])
    assert results["digits"]["beta_tcvae"]["test_images"] == 179  # --held-out sizes sprites' splits, not digits'
    assert (tmp_path / "out.json").is_file()


def test_digits_beta_sweep_statistics_and_a_smoke_run(tmp_path):
    import torch
    from torch.distributions import Normal

    sweep = load_script("digits_beta_sweep")
    assert sweep.BETAS[0] == 1e-6 and sweep.BETAS[-1] == 1e3 and len(sweep.BETAS) == 10 and sweep.SIZES == [2, 3, 5]

    class Stub:  # a posterior with known means and scales
        def __init__(self, loc, scale):
            self.q = Normal(loc, scale)

        def as_images(self, images):
            return images

        def posterior(self, images):
            return self.q

    mu = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    cov_mu = torch.cov(mu.T)  # diag(2/3, 8/3)
    sigma = torch.tensor([[0.5, 1.0]]).expand(4, 2)
    stats = sweep.posterior_statistics(Stub(mu, sigma), torch.zeros(4), seed=0)
    expected = torch.linalg.matrix_norm(torch.diag(sigma[0] ** 2) - cov_mu).item()
    assert abs(stats["frobenius"] - expected) < 1e-6 and abs(stats["cov_mu_trace"] - 10 / 3) < 1e-6
    collapsed = sweep.posterior_statistics(Stub(torch.zeros(4, 3), torch.ones(4, 3)), torch.zeros(4), seed=0)
    assert abs(collapsed["frobenius"] - 3**0.5) < 1e-9  # q(z|x) = N(0, I) for every x: ||I_3||_F

    argv = ["--smoke", "--runs", str(tmp_path / "runs"), "--json", str(tmp_path / "out.json"),
            "--figure", str(tmp_path / "sweep.png")]
    results = sweep.main(argv)
    assert set(results["runs"]) == {"z2_beta10"}
    assert all(run["steps"] == 3 and len(run["curve"]) == 3 and run["frobenius"] > 0 for run in results["runs"].values())
    first = (tmp_path / "sweep.png").read_bytes()
    assert 0 < len(first) < 300_000
    sweep.main([*argv, "--plot-only"])  # the figure again from the saved JSON and arrays, without training
    assert (tmp_path / "sweep.png").stat().st_size > 0


def test_throughput_times_the_image_vae_beside_a_bare_conv_vae():
    throughput = load_script("throughput")
    data, config, source = throughput.load_images(ROOT / "configs" / "digits_vae.yaml")
    model = data.model_config(config).model
    # small net on 1 x 8 x 8: conv 1->32 (4 x 4 out), 32->64 (2 x 2 out), dense 256 -> 256, 5 Gaussian latents
    convs = 2 * 1 * 32 * 16 * 16 + 2 * 32 * 64 * 16 * 4
    dense = 2 * 256 * 256 + 2 * 256 * 10 + 2 * 5 * 256 + 2 * 256 * 256
    assert throughput.image_flops_per_image(model) == 3 * (2 * convs + dense)
    import torch

    cpu = torch.device("cpu")
    ours = throughput.time_image_vae(data, config, batch_size=8, steps=2, warmup=1, device=cpu, repeats=2)
    bare = throughput.time_bare_conv(data.model_config(config), 8, 2, 1, cpu, repeats=2)
    for result in (ours, bare):
        assert len(result["seconds_all"]) == 2 and result["seconds"] == min(result["seconds_all"]) > 0
        assert result["tokens"] == 16 and result["flops"] == 16 * throughput.image_flops_per_image(model)
    library = sum(p.numel() for p in throughput.textvae.build_model(data.model_config(config), None).parameters())
    plain = sum(p.numel() for p in throughput.BareConvVAE(model.image, 5, (32, 64), 1.0).parameters())
    assert library == plain  # the same architecture


def test_iw_speed_block_probe_times_the_evaluation_blocks_shape():
    import torch

    from textvae.modules import fused

    iw_speed = load_script("iw_speed")
    probe = iw_speed.block_probe(vocab=2000, hidden=30, rate=1e10, reps=2)
    assert (probe["tokens"], probe["vocab_rows_per_product"]) == fused._evaluation_block(2000, torch.device("cpu"))
    assert probe["hidden_padded"] == fused._round_up(32)
    assert probe["output_layer_utilisation"] < probe["product_utilisation"]  # exp and sums take time of their own
    assert probe["output_layer_over_product"] == pytest.approx(
        probe["product_utilisation"] / probe["output_layer_utilisation"])
    assert probe["exp2_over_exp"] > 0
