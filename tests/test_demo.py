"""The demo's endpoints (``textvae.demo``) on tiny models: values against the library's own functions, a 400 with a
message for each bad input, the limits, one model call at a time, the HTTP server and the ``textvae demo`` command."""

import json
import logging
import shlex
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from textvae import TextVAE
from textvae.cli import main
from textvae.demo import DemoApp, DemoServer, LatentMap, Limits, cached_latent_map, map_cache_path, serving
from textvae.demo.app import changed_steps
from textvae.evaluation.disentanglement.traversals import traverse
from textvae.evaluation.homotopy import path_metrics, sentence_path
from textvae.evaluation.plots import pca_2d
from textvae.models import BaseVAE

from .conftest import SENTENCES, tiny_model_config
from .test_cvae import tiny_cvae_config

A, B = SENTENCES[0], SENTENCES[3]


def call(app: DemoApp, name: str, body=None, method: str = "POST") -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
    return app.handle(method, f"/api/{name}", raw if method == "POST" else b"")


@pytest.fixture
def app(sharp_model):
    return DemoApp(sharp_model, latent_map=LatentMap.build(sharp_model, SENTENCES, "test sentences"))


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("method, alias", [("linear", "lerp"), ("spherical", "slerp")])
def test_interpolate_returns_the_homotopy_path_with_its_changes_and_map_points(app, sharp_model, method, alias):
    status, data = call(app, "interpolate", {"a": A, "b": B, "steps": 7, "method": alias})
    assert status == 200, data
    expected = sentence_path(sharp_model, A, B, 7, method)
    assert data["path"] == expected.sentences and len(data["path"]) == 7 and data["method"] == method
    assert data["path"][0] == sharp_model.reconstruct(A)[0] and data["path"][-1] == sharp_model.reconstruct(B)[0]
    assert data["path"][0] != data["path"][-1]  # the test model tells the ends apart, so something changes
    assert data["t"][0] == 0.0 and data["t"][-1] == 1.0 and len(data["t"]) == 7
    assert data["changed"] == [i > 0 and s != data["path"][i - 1] for i, s in enumerate(data["path"])]
    assert any(data["changed"]) and data["metrics"] == path_metrics(data["path"])
    # the path's ends are A's and B's posterior means, which are points of the map (both are map sentences)
    points = np.asarray(app.latent_map.points)
    assert np.allclose(data["xy"][0], points[SENTENCES.index(A)], atol=1e-3)
    assert np.allclose(data["xy"][-1], points[SENTENCES.index(B)], atol=1e-3)


def test_changed_steps_marks_each_step_that_differs_from_the_one_before():
    assert changed_steps(["a", "a", "b", "b", "a"]) == [False, False, True, False, True]


def test_sample_reconstruct_and_map_values(app, sharp_model):
    status, data = call(app, "sample", {"n": 20, "strategy": "sample", "temperature": 0.7, "seed": 3})
    assert status == 200 and data["samples"] == sharp_model.sample(20, strategy="sample", temperature=0.7, seed=3)
    assert call(app, "sample", {"n": 20, "strategy": "sample", "temperature": 0.7, "seed": 3})[1] == data
    status, data = call(app, "reconstruct", {"sentence": A, "n": 4, "seed": 1})
    assert status == 200 and data["mean"] == sharp_model.reconstruct(A)[0] and len(data["samples"]) == 4
    status, data = call(app, "map", method="GET")
    assert status == 200 and data["sentences"] == SENTENCES
    expected, ratio = pca_2d(sharp_model.encode(SENTENCES))
    assert np.allclose(data["points"], expected, atol=1e-3) and np.allclose(data["explained"], ratio)


def test_info_lists_the_operations_limits_and_decoding(app):
    status, info = call(app, "info", method="GET")
    assert status == 200 and info["model_type"] == "sentence_vae"
    assert info["operations"] == ["interpolate", "sample", "reconstruct", "map"]  # no discrete variables: no traverse
    assert info["limits"]["max_steps"] == 50 and info["decoding"]["strategy"] == "greedy"
    assert info["latent"] == {"type": "gaussian", "code_size": 4, "category_sizes": []}


# ---------------------------------------------------------------- errors and limits


BAD_REQUESTS = [
    ("interpolate", {"a": "", "b": B}, "'a' is empty"),
    ("interpolate", {"a": A, "b": "   "}, "'b' is empty"),
    ("interpolate", {"a": A}, "'b' is missing"),
    ("interpolate", {"a": A, "b": 5}, "'b' must be a string"),
    ("interpolate", b"{not json", "not JSON"),
    ("interpolate", b"[1, 2]", "must be a JSON object"),
    ("interpolate", {"a": A, "b": B, "steps": 1}, "'steps' must be between 2 and 50, got 1"),
    ("interpolate", {"a": A, "b": B, "steps": 51}, "'steps' must be between 2 and 50, got 51"),
    ("interpolate", {"a": A, "b": B, "steps": "8"}, "'steps' must be an integer"),
    ("interpolate", {"a": A, "b": B, "steps": True}, "'steps' must be an integer"),
    ("interpolate", {"a": A, "b": B, "strategy": "nucleus"}, "unknown strategy 'nucleus'"),
    ("interpolate", {"a": A, "b": B, "method": "cubic"}, "unknown method 'cubic'"),
    ("interpolate", {"a": A, "b": B, "stpes": 4}, "unknown key 'stpes'; did you mean 'steps'?"),
    ("interpolate", {"a": "word " * 101, "b": B}, "'a' has 505 characters, more than the limit of 500"),
    ("interpolate", {"a": A, "b": B, "temperature": 0}, "'temperature' must be above 0"),
    ("sample", {"n": 0}, "'n' must be between 1 and 50, got 0"),
    ("sample", {"n": 51}, "'n' must be between 1 and 50, got 51"),
    ("reconstruct", {}, "'sentence' is missing"),
    ("respond", {"context": "hello"}, "not a dialogue model"),
    ("traverse", {"sentence": A}, "no discrete latent variables"),
]


@pytest.mark.parametrize("name, body, message", BAD_REQUESTS, ids=[m for _, _, m in BAD_REQUESTS])
def test_each_bad_request_is_a_400_with_its_message(app, name, body, message):
    status, data = call(app, name, body)
    assert status == 400 and list(data) == ["error"]
    assert message in data["error"] and "Traceback" not in data["error"]


def test_unknown_endpoints_and_wrong_methods(app):
    status, data = call(app, "interpolat", {})
    assert status == 404 and "did you mean 'interpolate'" in data["error"]
    assert call(app, "interpolate", method="GET")[0] == 405
    assert call(app, "info", {})[0] == 405
    status, data = call(app, "sample", b"{" + b" " * (70 * 1024) + b"}")
    assert status == 413 and "more than 65536" in data["error"]


def test_an_unexpected_error_is_a_500_with_a_short_message_and_a_logged_traceback(app, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.model, "sample", broken)
    with caplog.at_level(logging.ERROR, logger="textvae.demo"):
        status, data = call(app, "sample", {"n": 2})
    assert status == 500 and data == {"error": "internal error (RuntimeError); the server's log has the details"}
    assert "secret internals" in caplog.text and "Traceback" in caplog.text
    assert not app.lock.locked()  # released after the error


def test_limits_bound_the_work(sharp_model):
    app = DemoApp(sharp_model, limits=Limits(max_steps=4, max_samples=3, max_chars=40))
    assert len(call(app, "interpolate", {"a": A, "b": B, "steps": 4})[1]["path"]) == 4
    assert "between 2 and 4" in call(app, "interpolate", {"a": A, "b": B, "steps": 5})[1]["error"]
    assert "between 1 and 3" in call(app, "sample", {"n": 4})[1]["error"]
    assert len(call(app, "sample", {})[1]["samples"]) == 3  # the default count is capped too
    assert "limit of 40" in call(app, "reconstruct", {"sentence": "x" * 41})[1]["error"]
    assert call(app, "map", method="GET")[0] == 400  # started without a map


def test_overlong_sentences_are_truncated_with_a_warning_in_the_answer(app):
    status, data = call(app, "reconstruct", {"sentence": " ".join(["the cat"] * 12), "n": 1})
    assert status == 200 and "truncated" in " ".join(data["warnings"])


def test_one_model_call_at_a_time_while_the_page_still_loads(sharp_model):
    app = DemoApp(sharp_model, limits=Limits(busy_timeout=0.2))
    with serving(app) as server:
        app.lock.acquire()  # as if a long request held the model
        try:
            started = time.perf_counter()
            status, data = call(app, "sample", {"n": 1})
            assert status == 503 and "busy" in data["error"] and time.perf_counter() - started >= 0.2
            with urllib.request.urlopen(server.url, timeout=5) as page:  # the page is not blocked
                assert b"<title>textvae demo</title>" in page.read()
            with urllib.request.urlopen(server.url + "api/info", timeout=5) as info:
                assert json.load(info)["model_type"] == "sentence_vae"
        finally:
            app.lock.release()
        assert call(app, "sample", {"n": 1})[0] == 200


# ---------------------------------------------------------------- other models


def test_a_dialogue_model_responds_and_refuses_sentence_operations(tokenizer):
    torch.manual_seed(0)
    model = BaseVAE.from_config(tiny_cvae_config(), tokenizer).eval()
    app = DemoApp(model)
    assert call(app, "info", method="GET")[1]["operations"] == ["respond"]
    status, data = call(app, "respond", {"context": "the cat sat on the mat .\na dog ran in the park .", "n": 3,
                                         "strategy": "sample", "seed": 2})
    assert status == 200 and len(data["responses"]) == 3
    expected = model.respond([[SENTENCES[0], SENTENCES[1]]], num_samples=3, strategy="sample", seed=2)[0]
    assert data["responses"] == expected and data["context"] == [SENTENCES[0], SENTENCES[1]]
    assert "/api/respond" in call(app, "interpolate", {"a": A, "b": B})[1]["error"]
    assert "'context' is missing" in call(app, "respond", {})[1]["error"]
    assert "more than the limit of 10" in call(app, "respond", {"context": ["hi"] * 11})[1]["error"]
    labelled = DemoApp(BaseVAE.from_config(tiny_cvae_config(condition="label"), tokenizer).eval())
    assert len(call(labelled, "respond", {"label": 2, "n": 2})[1]["responses"]) == 2
    assert "'label' must be between 0 and 2" in call(labelled, "respond", {"label": 3})[1]["error"]


def test_a_discrete_model_traverses_one_variable(tokenizer):
    torch.manual_seed(0)
    config = tiny_model_config(latent={"type": "joint", "size": 2, "category_sizes": [2, 3]})
    model = TextVAE.from_config(config, tokenizer).eval()
    app = DemoApp(model)
    assert "traverse" in call(app, "info", method="GET")[1]["operations"]
    status, data = call(app, "traverse", {"sentence": A, "variable": 1})
    assert status == 200 and len(data["sentences"]) == 3
    assert data["sentences"] == [text for _, text in traverse(model, A, 2 + 1)]  # after the 2 Gaussian dimensions
    assert data["category"] == int(model.encode([A])[0, 2 + 2 :].argmax())
    assert "between 0 and 1" in call(app, "traverse", {"sentence": A, "variable": 2})[1]["error"]


# ---------------------------------------------------------------- the map's cache


def test_the_map_is_cached_in_the_run_folder_and_rebuilt_for_other_weights(tmp_path, sharp_model, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = sharp_model.save_pretrained(tmp_path / "run" / "best")
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")
    built = cached_latent_map(sharp_model, folder, lambda: SENTENCES, "test", {"count": 8})
    assert built.cache == str(tmp_path / "run" / "demo-map-best.json") == str(map_cache_path(folder))

    def never():
        raise AssertionError("the cached map should have been used")

    cached = cached_latent_map(sharp_model, folder, never, "test", {"count": 8})
    assert cached.sentences == SENTENCES and np.allclose(cached.points, built.points)
    assert np.allclose(cached.project(sharp_model.encode([A])), built.points[:1])
    assert cached_latent_map(sharp_model, folder, lambda: SENTENCES[:3], "test", {"count": 3}).sentences == SENTENCES[:3]
    with torch.no_grad():
        sharp_model.latent.proj.bias.add_(1.0)
    sharp_model.save_pretrained(folder)  # new weights: the cache no longer fits
    assert len(cached_latent_map(sharp_model, folder, lambda: SENTENCES[:2], "test", {"count": 3}).sentences) == 2
    bare = sharp_model.save_pretrained(tmp_path / "bare")  # no run beside it: the user's cache folder
    in_cache = cached_latent_map(sharp_model, bare, lambda: SENTENCES, "test", {"count": 8})
    assert Path(in_cache.cache).parent == tmp_path / "cache" / "textvae" / "demo" and Path(in_cache.cache).is_file()
    assert not any(p.name.startswith("demo-map") for p in tmp_path.iterdir())


# ---------------------------------------------------------------- over HTTP and from the command line


def post(url: str, data: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_server_answers_the_api_and_serves_the_page_from_the_package(app):
    with serving(app) as server:
        body = json.dumps({"a": A, "b": B, "steps": 5}).encode()
        assert post(server.url + "api/interpolate", body) == call(app, "interpolate", json.loads(body))
        status, data = post(server.url + "api/interpolate", b"not json")
        assert status == 400 and "not JSON" in data["error"]
        status, data = post(server.url + "api/sample", b"{" + b" " * (70 * 1024) + b"}")
        assert status == 413
        for path, kind in (("", "text/html"), ("static/demo.js", "text/javascript"), ("static/demo.css", "text/css")):
            with urllib.request.urlopen(server.url + path, timeout=5) as response:
                assert response.headers["Content-Type"].startswith(kind) and len(response.read()) > 500
        for path in ("static/../app.py", "static/app.py", "nowhere", "static/.hidden.js"):
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(server.url + path, timeout=5)
            assert error.value.code == 404
        page = urllib.request.urlopen(server.url, timeout=5).read().decode()
        assert "http://" not in page and "https://" not in page  # no external assets


def run_demo_command(argv: list[str], monkeypatch) -> tuple[int, dict]:
    """``textvae demo`` with ``argv`` in a thread until it serves; its exit status and ``/api/info``, having
    loaded the page."""
    started = []

    class Recorded(DemoServer):  # the command's own server, so the test can stop it
        def serve_forever(self, *args, **kwargs):
            started.append(self)
            super().serve_forever(*args, **kwargs)

    monkeypatch.setattr("textvae.demo.DemoServer", Recorded)
    status = []
    command = threading.Thread(target=lambda: status.append(main(["demo", *argv, "--quiet"])))
    command.start()
    try:
        for _ in range(1200):
            if started or not command.is_alive():
                break
            time.sleep(0.05)
        assert started, "the command stopped before serving"
        with urllib.request.urlopen(started[0].url, timeout=10) as page:
            assert b"Interpolate" in page.read()
        with urllib.request.urlopen(started[0].url + "api/info", timeout=10) as info:
            info = json.load(info)
    finally:
        if started:
            started[0].shutdown()
        command.join(timeout=30)
    return status[0], info


def test_textvae_demo_serves_a_run_folder(tmp_path, sharp_model, monkeypatch, capsys):
    folder = sharp_model.save_pretrained(tmp_path / "run" / "best")
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "valid", "test"):
        (data / f"{split}.txt").write_text("\n".join(SENTENCES) + "\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    status, info = run_demo_command([str(folder.parent), "--port", "0", "--data-dir", str(data)], monkeypatch)
    assert status == 0 and info["folder"] == str(folder) and info["map"]["count"] == 8
    assert info["map"]["cache"].startswith(str(tmp_path / "cache"))  # no config.yaml in the run: the user cache
    err = capsys.readouterr().err
    assert f"using the model in {folder}" in err and f"serving {folder} on http://127.0.0.1:" in err


def test_the_readme_demo_commands_run(tmp_path, sharp_model, monkeypatch):
    """The README's `textvae demo` lines, on a tiny run folder named as there, on a free port."""
    from textvae.config import Config, DataConfig, save_config

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Interpolation demo")[1].split("```bash\n")[1].split("```")[0]
    lines = [line.split("#")[0].strip() for line in section.splitlines() if line.startswith("textvae demo")]
    assert len(lines) == 2
    monkeypatch.chdir(tmp_path)
    sharp_model.save_pretrained(tmp_path / "runs" / "default" / "best")
    save_config(Config(data=DataConfig(synthetic_size=100)), tmp_path / "runs" / "default" / "config.yaml")
    for line in lines:
        status, info = run_demo_command(shlex.split(line)[2:] + ["--port", "0", "--map-sentences", "20"], monkeypatch)
        assert status == 0 and info["map"]["count"] == 10 and "map" in info["operations"]  # the whole valid split
    assert (tmp_path / "runs" / "default" / "demo-map-best.json").is_file()  # cached in the run folder
    assert info["decoding"]["strategy"] == "sample" and info["decoding"]["top_p"] == 0.9  # the second line's flags


def test_demo_command_errors_are_one_line(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "nowhere")]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert main(["demo", str(tmp_path), "--port", "70000"]) == 2
    assert "at most 65535" in capsys.readouterr().err
