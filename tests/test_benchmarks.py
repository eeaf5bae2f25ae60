"""The benchmark scripts' experiment definitions stay valid (their full runs need ../shared data and hours)."""

import importlib.util
from pathlib import Path

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


def test_ptb_table_lists_our_rows_beside_the_published_ones():
    ptb = load_script("ptb")
    row = {"ppl": 120.5, "mi": 1.5, "au": 7, "kl": 2.0, "nll": 105.0}
    table = ptb.format_table({"rows": {"annealing": row}})
    assert "| annealing | 120.50 | 1.50 | 7 | 2.00 | 105.00 | 101.40 / 0.00 / 0 / 0.00 / 101.20 |" in table
    assert "lstm_lm (not run)" in table


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


def test_dsentences_dci_max_values_leaves_out_only_the_larger_factors():
    dsentences = load_script("dsentences")
    sizes = dsentences.FACTORS_NUM_VALUES
    assert dsentences.dci_factor_indices(None) == list(range(len(sizes)))
    small = dsentences.dci_factor_indices(3)
    assert len(small) == 8 and all(sizes[k] <= 3 for k in small) and sizes.index(1100) not in small
    assert dsentences.dci_factor_indices(2) == [k for k, n in enumerate(sizes) if n == 2]
