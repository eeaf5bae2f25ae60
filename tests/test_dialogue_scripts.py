"""scripts/train_dialogue.py and examples/diverse_responses.py run end to end on a tiny JSONL dialogue corpus."""

import os
import subprocess
import sys

from .test_dialogue_data import write_jsonl_corpus
from .test_trainer import ROOT

TINY_DIALOGUE = [
    "data.corpus=dialogue_jsonl", "data.batch_size=4", "data.eval_batch_size=8",
    "model.encoder.embedding_size=8", "model.encoder.hidden_size=8", "model.decoder.embedding_size=8",
    "model.decoder.hidden_size=8", "model.latent.size=3", "model.dialogue.context_hidden_size=6",
    "model.dialogue.prior_hidden_size=6", "model.dialogue.num_acts=3", "model.dialogue.act_embedding_size=2",
    "train.eval_every=2", "train.log_every=1",
]


def test_train_dialogue_script_and_diverse_responses_example(tmp_path):
    folder = write_jsonl_corpus(tmp_path / "dialogues")
    # this checkout's package, not whichever one is installed
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    train = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_dialogue.py"), "--config", str(ROOT / "configs" / "dailydialog_kgcvae.yaml"),
         "--data-dir", str(folder), "--max-steps", "3", "--no-progress", "--output-dir", str(tmp_path / "run"), *TINY_DIALOGUE],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert train.returncode == 0, train.stderr[-2000:]
    assert "responses from 5 z" in train.stdout and "BLEU recall" in train.stdout
    example = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "diverse_responses.py"), str(tmp_path / "run" / "final"),
         "hello there .", "hi , how are you ?", "--samples", "3"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert example.returncode == 0, example.stderr[-2000:]
    assert [line.split(":")[0] for line in example.stdout.splitlines()[-3:]] == ["z0", "z1", "z2"]
