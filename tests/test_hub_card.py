"""The model hub's README.md (`model/card.py` `hub_readme`, `ccvae info --readme`): YAML front matter
that a YAML reader parses into the keys a hub reads, with the file's own numbers; hostile strings of
the file kept inside their YAML values and inert in the Markdown; the shipped cards carry it."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.cli import assert_clean_exit, assert_one_line, run_cli
from helpers.hostile import HOSTILE, plant_names, unsafe_chars

from ccvae_tools.model.card import (hub_front_matter, hub_readme, split_front_matter, with_front_matter,
                                    write_hub_readme, yaml_scalar)
from ccvae_tools.model.weights import read_metadata
from ccvae_tools.util.errors import WeightsError

yaml = pytest.importorskip("yaml")      # the test extra installs PyYAML; ccvae itself does not need it

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("clean_env")      # conftest.py
LABELS = ["Smiling", "Eyeglasses", "Blond_Hair"]       # helpers/tiny_model.py
# strings that would end a YAML value, its line or the front matter if written as they are
YAML_BREAKERS = ["---", "a\n---\nlicense: mit", '"quoted" and \'single\'', "key: value", "# comment",
                 "&anchor *alias !!python/object", "[1, {2: 3}]", "- item", "\u2028sep\u2029", "\ufeffbom",
                 "\x85nel", "\ud800lone", "tab\tand\x0bvt\x0cff", "\U0001f600 face", "yes", "null", "0x1F",
                 "\\", "", " padded "]


def _front_matter(text: str) -> dict:
    """The YAML between the first two `---` lines, parsed as a hub parses it."""
    assert text.startswith("---\n"), text[:80]
    end = text.index("\n---\n", 4)
    return yaml.safe_load(text[4:end])


def _metrics_of(front: dict) -> dict[str, float]:
    (result,) = front["model-index"][0]["results"]
    return {m["name"]: m["value"] for m in result["metrics"]}


@pytest.fixture()
def meta(tiny) -> dict:
    """The tiny model's decoded metadata, with a metrics record as `ccvae eval` writes one."""
    m = copy.deepcopy(read_metadata(tiny))
    m["ccvae.metrics"] = {"split": "test", "images": 30, "accuracy": {"Smiling": 0.9, "Eyeglasses": 1,
                                                                      "Blond_Hair": 1e-05},
                          "balanced_accuracy": {"Smiling": 0.8333333333333334, "Eyeglasses": float("nan")},
                          "mean_accuracy": 0.6333366666666667, "recon_l1": 0.02574849128723144,
                          "bound": -8875.9384765625, "edit": {"mean_success": True},
                          "edit_consistent": {"mean_success": 0.83}}
    return m


def test_front_matter_has_the_hub_keys_and_the_files_numbers(meta):
    front = _front_matter(hub_readme(meta))
    assert {"license", "library_name", "tags", "datasets", "metrics", "model-index"} <= set(front)
    assert front["library_name"] == "ccvae" and "ccvae" in front["tags"]
    assert front["datasets"] == ["tiny"] and front["license"] == "unknown"      # the tiny model states none
    assert front["model-index"][0]["name"] == "tiny test model"
    assert front["model-index"][0]["results"][0]["dataset"]["split"] == "test"
    values = _metrics_of(front)
    for label in LABELS:
        assert values[f"{label} accuracy"] == meta["ccvae.metrics"]["accuracy"][label]      # exactly
    assert values["Smiling balanced accuracy"] == 0.8333333333333334
    assert "Eyeglasses balanced accuracy" not in values                  # NaN: left out, not `.nan`
    assert values["mean accuracy"] == 0.6333366666666667
    assert values["reconstruction L1 per pixel"] == 0.02574849128723144
    assert values["bound per image (nats)"] == -8875.9384765625
    assert values["consistent edit success (judged)"] == 0.83
    assert "edit success (judged)" not in values                         # a bool is not a number
    assert set(front["metrics"]) == {"accuracy", "balanced_accuracy", "l1", "elbo", "edit_success"}


def test_without_metrics_there_is_no_model_index(tiny):
    text = hub_readme(read_metadata(tiny))
    front = _front_matter(text)
    assert front["metrics"] == [] and "model-index" not in front
    assert "None recorded yet" in text


@pytest.mark.parametrize("strings", [list(HOSTILE.values()), YAML_BREAKERS], ids=["hostile", "yaml"])
def test_hostile_strings_stay_inside_their_values(meta, strings):
    for s in strings:
        m = copy.deepcopy(meta)
        names = [s, s + " 2", s + " 3"]
        for record, name in zip(m["ccvae.labels"], names):
            record["name"] = name
        m["ccvae.label_prior"] = dict(zip(names, m["ccvae.label_prior"].values()))
        m["ccvae.metrics"]["accuracy"] = dict(zip(names, (0.5, 0.25, 0.125)))
        m["ccvae.data"] = {"name": s}
        m["modelspec.title"] = m["modelspec.license"] = m["ccvae.version"] = s
        text = hub_readme(m)
        front = _front_matter(text)
        assert set(front) == {"license", "library_name", "pipeline_tag", "tags", "datasets", "metrics",
                              "model-index"} | ({"license_name"} if front["license"] == "other" else set()), s
        assert front["datasets"] == ([s] if s else []) and front["model-index"][0]["name"] == (s or "CCVAE model")
        assert front["model-index"][0]["results"][0]["dataset"]["name"] == (s or "unknown")
        values = _metrics_of(front)
        assert [values[f"{n} accuracy"] for n in names] == [0.5, 0.25, 0.125], s
        assert front["library_name"] == "ccvae"
        _, body = split_front_matter(text)
        assert body.startswith("\n# ") and "\n---\n" not in body, s
        assert not unsafe_chars(body, allow="\n") and "\u2028" not in body, s
        assert all(c < "\x7f" for c in text.split("\n---\n")[0]), s          # the YAML is ASCII


def test_yaml_scalars_read_back_as_written():
    floats = [1e-05, 1e16, -0.0, 0.1, 1.0, 5e-324, 1.7976931348623157e308, -8875.9384765625, 2.5e-10]
    for v in floats:
        assert yaml.safe_load(yaml_scalar(v)) == v and isinstance(yaml.safe_load(yaml_scalar(v)), float), v
    for v in (0, 7, -3, 10**20, True, False, None):
        assert yaml.safe_load(yaml_scalar(v)) == v
    every = "".join(chr(c) for c in range(0x3000)) + "\U0001f600\U000e0001\U0010ffff\ud800\udfff"
    assert yaml.safe_load(yaml_scalar(every)) == every


@pytest.mark.parametrize("text, want", [("MIT", {"license": "mit"}), ("apache-2.0", {"license": "apache-2.0"}),
                                        ("", {"license": "unknown"}),
                                        ("Free for personal use", {"license": "other",
                                                                   "license_name": "free-for-personal-use"})])
def test_licence_ids_and_free_text(meta, text, want):
    meta["modelspec.license"] = text
    front = _front_matter(hub_front_matter(meta))
    assert {k: front[k] for k in ("license", "license_name") if k in front} == want


def test_malformed_metadata_is_a_weights_error(meta):
    meta["ccvae.label_prior"] = {"Smiling": ["not a number", 1]}
    with pytest.raises(WeightsError, match="malformed ccvae metadata"):
        hub_readme(meta)


@pytest.mark.parametrize("weights, card", [("avatars64.safetensors", "README.md"),
                                           ("fonts32.safetensors", "README.fonts32.md")])
def test_shipped_cards_start_with_their_weights_front_matter(weights, card):
    """Regenerate with `ccvae info weights/W --readme weights/CARD --keep-body` after --write-metrics."""
    text = (ROOT / "weights" / card).read_text(encoding="utf-8")
    meta = read_metadata(ROOT / "weights" / weights)
    assert text.startswith(hub_front_matter(meta) + "\n# `" + weights + "`")
    values = _metrics_of(_front_matter(text))
    for label, accuracy in meta["ccvae.metrics"]["accuracy"].items():
        assert values[f"{label} accuracy"] == accuracy


def test_info_readme_writes_the_card_and_keep_body_rewrites_only_its_front_matter(tiny, tmp_path, capsys):
    out = tmp_path / "README.md"
    code, stdout, err = run_cli(["info", tiny, "--readme", out], capsys)
    assert code == 0 and stdout == f"{out}\n", err
    assert out.read_text() == hub_readme(read_metadata(tiny))
    code, stdout, _ = run_cli(["info", tiny, "--readme", "-"], capsys)
    assert code == 0 and stdout == out.read_text()
    out.write_text("---\nlicense: stale\n---\n\n# My card\n\nHand-written text.\n")
    code, _, err = run_cli(["info", tiny, "--readme", out, "--keep-body"], capsys)
    assert code == 0, err
    kept = out.read_text()
    assert kept == hub_front_matter(read_metadata(tiny)) + "\n# My card\n\nHand-written text.\n"
    assert with_front_matter(read_metadata(tiny), kept) == kept                 # idempotent
    plain = tmp_path / "plain.md"
    plain.write_text("# No front matter yet\n")
    assert run_cli(["info", tiny, "--readme", plain, "--keep-body"], capsys)[0] == 0
    assert plain.read_text().endswith("---\n\n# No front matter yet\n")


@pytest.mark.parametrize("args, code, needle", [
    (["--readme", "x.md", "--json"], 2, "--json"), (["--keep-body"], 2, "--keep-body"),
    (["--readme", "-", "--keep-body"], 2, "--keep-body"),
    (["--readme", "missing.md", "--keep-body"], 1, "no such card"),
    (["--readme", "no/such/dir/x.md"], 1, "does not exist")])
def test_info_readme_usage_errors_are_one_line(tiny, tmp_path, capsys, monkeypatch, args, code, needle):
    monkeypatch.chdir(tmp_path)
    got, _, err = run_cli(["info", tiny, *args], capsys)
    assert_one_line(got, err, (code,), needle)


def test_planted_names_reach_the_readme_safely(tiny, tmp_path, capsys):
    """End to end: a weights file whose label names, title, data name and licence are hostile."""
    for i, s in enumerate(("\x1b]0;pwned\x07", "a\n---\nx: 1", "<script>alert(1)</script>")):
        planted = plant_names(tiny, tmp_path / f"p{i}.safetensors", names={0: s}, text=s)
        code, out, err = run_cli(["info", planted, "--readme", "-"], capsys, warnings_shown=True)
        assert_clean_exit(code, out, err)
        assert _front_matter(out)["datasets"] == [s]
        _, body = split_front_matter(out)
        assert f"| {s} |" not in body and "\n---\n" not in body
    assert "<script>" not in body and "\\<script\\>" in body


def test_write_hub_readme_goes_next_to_the_weights(tiny, tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(Path(tiny).read_bytes())
    assert write_hub_readme(weights) == tmp_path / "README.md"
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == hub_readme(read_metadata(weights))


def test_info_readme_needs_no_torch(tmp_path):
    code = ("import sys; from ccvae_tools.cli import main; main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'imported torch or numpy'")
    run = subprocess.run([sys.executable, "-c", code, "info", str(ROOT / "weights" / "fonts32.safetensors"),
                          "--readme", str(tmp_path / "README.md")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "README.md").read_text(encoding="utf-8").startswith("---\n")
