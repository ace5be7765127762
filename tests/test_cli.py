"""The command-line package: shared validators, early refusals, flag wording, plugin conflicts.

Everything here runs ``main([...])`` in-process and needs no model: each refusal happens before
any work starts.
"""

from __future__ import annotations

import argparse
import types
from pathlib import Path

import pytest

from dtgan_plugin.cli import main, options


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    """Exit code, stdout, and stderr lines other than plugin-load warnings."""
    code = main(list(argv))
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.strip().splitlines()
             if ln and not ln.startswith("dtgan: warning: plugin")]
    return code, captured.out, lines


# --- options.py -------------------------------------------------------------------------------

@pytest.mark.parametrize("func, text, value", [
    (options.positive_int, "3", 3), (options.nonneg_int, "0", 0),
    (options.finite_float, "-2.5", -2.5), (options.amplify, "0", 0.0),
    (options.fps, "29.97", 29.97), (options.crf, "63", 63), (options.threads, "auto", "auto"),
    (options.threads, "4", 4), (options.int_at_least(2), "2", 2), (options.size, "255", 255),
])
def test_validators_accept(func, text: str, value) -> None:
    assert func(text) == value


@pytest.mark.parametrize("func, text, needle", [
    (options.positive_int, "0", "positive"), (options.positive_int, "x", "whole number"),
    (options.nonneg_int, "-1", ">= 0"), (options.finite_float, "nan", "finite"),
    (options.finite_float, "inf", "finite"), (options.amplify, "-inf", "finite"),
    (options.amplify, "NaN", "finite"), (options.fps, "0", "> 0"), (options.fps, "1e9", "above"),
    (options.fps, "nan", "finite"), (options.crf, "64", "between 0 and 63"),
    (options.threads, "0", "positive"), (options.int_at_least(2), "1", ">= 2"),
    (options.size, "-5", "positive"),
])
def test_validators_refuse(func, text: str, needle: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=needle):
        func(text)


@pytest.mark.parametrize("command", ["transfer", "batch"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_amplify_refused_by_every_command(capsys, tmp_path: Path, command: str,
                                                     value: str) -> None:
    args = (["transfer", "-s", "s.mp4", "-t", "t.png", "-o", str(tmp_path / "o.mp4")]
            if command == "transfer" else
            ["batch", "--sources", str(tmp_path), "--targets", str(tmp_path), "--out-dir",
             str(tmp_path / "out")])
    code, _, lines = _run(capsys, *args, f"--amplify={value}")
    assert code == 2 and len(lines) == 1, lines
    assert "--amplify" in lines[0] and "expected a finite number" in lines[0]


def test_model_flags_are_the_same_everywhere() -> None:
    from dtgan_plugin.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))

    def flags(name: str) -> dict[str, argparse.Action]:
        return {s: a for a in sub.choices[name]._actions for s in a.option_strings}

    shared = ("--checkpoint", "--device", "--reference-frame", "--fit", "--amplify", "--smooth",
              "--size", "--alpha", "--codec", "--crf", "--chunk-size")
    transfer, batch = flags("transfer"), flags("batch")
    for flag in shared:
        assert transfer[flag].type is batch[flag].type, flag
        assert transfer[flag].default == batch[flag].default, flag
        assert transfer[flag].choices == batch[flag].choices, flag
    assert flags("graph")["--crf"].type is transfer["--crf"].type
    assert flags("dynamics")["--reference-frame"].type is options.nonneg_int


# --- refusals before any work -------------------------------------------------------------------

@pytest.mark.parametrize("command", ["transfer", "dynamics", "graph"])
def test_output_folder_refused_before_work(capsys, tmp_path: Path, command: str) -> None:
    folder = tmp_path / ("out.dyn.safetensors" if command == "dynamics" else "out.mp4")
    folder.mkdir()
    argv = {"transfer": ["transfer", "-s", "missing.mp4", "-t", "missing.png", "-o", str(folder)],
            "dynamics": ["dynamics", "-s", "missing.mp4", "-o", str(folder)],
            "graph": ["graph", "[0]hflip[out]", "-i", "missing.mp4", "-o", str(folder)]}[command]
    code, _, lines = _run(capsys, *argv)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("dtgan: error: ") and "is a folder" in lines[0]
    assert str(folder) in lines[0] and "Traceback" not in lines[0]
    assert list(folder.iterdir()) == []


def test_graph_refuses_two_outputs_with_one_path(capsys, tmp_path: Path) -> None:
    out = str(tmp_path / "g.mp4")
    code, _, lines = _run(capsys, "graph", "[0]split[a][b];[a]hflip[c];[b]vflip[d]",
                          "-i", "missing.mp4", "-o", out, "-o", out)
    assert code == 2 and len(lines) == 1, lines
    assert "two -o outputs are written to" in lines[0]


def test_non_finite_learning_rate_is_a_config_error(capsys) -> None:
    code, _, lines = _run(capsys, "train", "tiny", "--set", "optim.lr_g=nan")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0] == "dtgan: error: 'optim.lr_g' must be a finite learning rate, got nan"


def test_out_of_range_config_value_is_a_config_error(capsys) -> None:
    code, _, lines = _run(capsys, "train", "tiny", "--set", "optim.beta2=1.0")
    assert code == 2 and len(lines) == 1, lines
    assert "'optim.beta2' must be in [0, 1), got 1.0" in lines[0]


def test_verbose_keeps_the_traceback(capsys) -> None:
    code = main(["-v", "train", "tiny", "--set", "optim.lr_d=inf"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" in err and "ConfigError" in err
    assert err.strip().splitlines()[-1] == (
        "dtgan: error: 'optim.lr_d' must be a finite learning rate, got inf")


# --- dtgan plugins: stage-name conflicts -------------------------------------------------------

def test_plugins_lists_stage_name_conflicts(capsys, monkeypatch) -> None:
    import json

    from dtgan_plugin.hooks import manager

    fake = types.SimpleNamespace(conflicts=[manager.Conflict("filters", "acme.blur",
                                                             ("acme_a", "acme_b"))])
    monkeypatch.setattr(manager, "get_registry", lambda: fake)
    code, out, _ = _run(capsys, "plugins")
    assert code == 0
    assert ("conflict: stage 'acme.blur' is registered by both acme_a and acme_b (a graph that "
            "uses it fails; disable one with DTGAN_DISABLE_PLUGINS)") in out.splitlines()
    code, out, _ = _run(capsys, "plugins", "--json")
    assert code == 0
    assert json.loads(out)["conflicts"] == [{"kind": "filters", "name": "acme.blur",
                                             "plugins": ["acme_a", "acme_b"]}]


def test_plugins_lists_the_registry_conflicts(capsys, monkeypatch) -> None:
    from dtgan_plugin.hooks import manager

    fake = types.SimpleNamespace(conflicts=[
        manager.Conflict("filters", "acme.blur", ("acme_a", "acme_b")),
        manager.Conflict("readers", "acme.raw", ("acme_a", "acme_c", "acme_d"))])
    monkeypatch.setattr(manager, "get_registry", lambda: fake)
    code, out, _ = _run(capsys, "plugins")
    assert code == 0
    lines = [ln for ln in out.splitlines() if ln.startswith("conflict:")]
    assert lines == [
        "conflict: stage 'acme.blur' is registered by both acme_a and acme_b (a graph that "
        "uses it fails; disable one with DTGAN_DISABLE_PLUGINS)",
        "conflict: reader 'acme.raw' is registered by acme_a, acme_c and acme_d (a "
        "graph that uses it fails; disable one with DTGAN_DISABLE_PLUGINS)"]


def test_plugins_without_conflicts_prints_none(capsys, monkeypatch) -> None:
    from dtgan_plugin.hooks import manager

    monkeypatch.setattr(manager, "get_registry", lambda: types.SimpleNamespace(conflicts=[]))
    code, out, _ = _run(capsys, "plugins")
    assert code == 0 and "conflict" not in out
    assert "dtgan_plugin.models.plugin (built-in)" in out


# --- dtgan eval: its errors name its flags ------------------------------------------------------

@pytest.mark.parametrize("message, expected", [
    ("paired reference 'nope' is not one of the methods (static)",
     "--paired-with 'nope' is not one of the methods (static)"),
    ("batch_size must be >= 1, got 0", "--batch-size must be >= 1, got 0"),
    ("clips must be >= 1, got 0", "--clips must be >= 1, got 0"),
    ("unknown synth key 'people'", "unknown --synth key 'people'"),
    ("synth identities must be between 11 and 99, got 5",
     "--synth identities must be between 11 and 99, got 5"),
    ("data folder not found: /x", "--data folder not found: /x"),
    ("checkpoint 'a=' is not NAME=PATH", "--checkpoint 'a=' is not NAME=PATH"),
    ("the output folder r is a file", "-o r is a file"),
    ("pass a checkpoint or a baseline", "pass --checkpoint or --baselines"),
    ("checkpoint not found: /m.safetensors", "checkpoint not found: /m.safetensors"),
    ("the synthfaces world", "the synthfaces world"),
])
def test_eval_rules_name_the_flags(message: str, expected: str) -> None:
    from dtgan_plugin.cli.evaluate import EVAL_RULES
    from dtgan_plugin.cli.reword import reword

    assert reword(message, EVAL_RULES) == expected


def test_eval_error_from_run_evaluation_names_the_flag(capsys, tmp_path: Path) -> None:
    code, _, lines = _run(capsys, "eval", "--baselines", "static", "--data",
                          str(tmp_path / "nope"), "-o", str(tmp_path / "r"))
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("dtgan: error: --data folder not found")


def test_eval_numeric_flags_checked_by_the_parser(capsys, tmp_path: Path) -> None:
    code, _, lines = _run(capsys, "eval", "--baselines", "static", "--batch-size", "0",
                          "-o", str(tmp_path / "r"))
    assert code == 2 and len(lines) == 1, lines
    assert "argument --batch-size: expected a positive number, got 0" in lines[0]


def test_batch_alpha_takes_the_loader_modes(capsys, tmp_path: Path) -> None:
    from dtgan_plugin.media.image import ALPHA_MODES

    code, _, lines = _run(capsys, "batch", "--sources", str(tmp_path), "--targets",
                          str(tmp_path), "--out-dir", str(tmp_path / "o"), "--alpha", "over")
    assert code == 2 and len(lines) == 1, lines
    assert "argument --alpha: invalid choice: 'over'" in lines[0]
    for mode in ALPHA_MODES:
        assert f"'{mode}'" in lines[0]
