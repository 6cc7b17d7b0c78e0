"""`loralab compare`: trainable-parameter counts against models actually built, the offline
analytical count, runs with results by epoch and the paper's targets."""

from __future__ import annotations

import json
import math
import re

import pytest
from reports_eventlogs import start_record, step_records, write_log

from loralab.cli.main import main
from loralab.config import ConfigError, load_config
from loralab.config.schema import config_to_dict
from loralab.engine.known_models import local_model_dir
from loralab.errors import LoralabError
from loralab.reports.compare import compare, render_markdown, results_rows
from loralab.reports.params import analytical_count
from loralab.speech.backbones.phi4mm import PHI4_SPEECH_LORA_TARGETS

PHI4 = "microsoft/Phi-4-multimodal-instruct"


def table_row(markdown: str, label: str) -> list[str]:
    line = next(ln for ln in markdown.splitlines() if ln.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def first_int(cell: str) -> int:
    return int(re.match(r"[\d,]+", cell.removeprefix(">= ")).group(0).replace(",", ""))


@pytest.fixture(scope="module")
def tiny_configs(tiny_model_dir, synth_manifest_dir, tmp_path_factory):
    """pretrained_r320 / paper_r64 / unfreeze_r64 on the tiny model; the pretrained one gets a
    speech-lora adapter (r=320, as Microsoft's) saved here with PEFT."""
    from peft import LoraConfig, get_peft_model
    from transformers import Phi4MultimodalForCausalLM

    root = tmp_path_factory.mktemp("compare_configs")
    model = Phi4MultimodalForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(
        model, LoraConfig(r=320, lora_alpha=640, lora_dropout=0.01, target_modules=PHI4_SPEECH_LORA_TARGETS)
    )
    peft_model.save_pretrained(root / "speech-lora")
    paths = {}
    for preset in ("pretrained_r320", "paper_r64", "unfreeze_r64"):
        adapter = f"  adapter_path: {root / 'speech-lora'}\n" if preset == "pretrained_r320" else ""
        path = root / f"tiny_{preset}.yaml"
        path.write_text(
            f"base: {preset}\nname: tiny_{preset}\n"
            f"model:\n  name_or_path: {tiny_model_dir}\n  gradient_checkpointing: false\n"
            f"lora:\n  rank: {320 if preset == 'pretrained_r320' else 64}\n{adapter}"
            f"speech:\n  manifest_dir: {synth_manifest_dir}\n  limit: 2\n"
        )
        paths[preset] = path
    return paths


def test_compare_counts_equal_the_built_models(tiny_configs, capsys):
    from loralab.engine.runtime import Runtime
    from loralab.speech.system import build_parts

    names = ["pretrained_r320", "paper_r64", "unfreeze_r64"]
    assert main(["compare", *(str(tiny_configs[n]) for n in names)]) == 0
    printed = [first_int(c) for c in table_row(capsys.readouterr().out, "trainable parameters")]

    built = []
    for n in names:
        model = build_parts(load_config(tiny_configs[n]), Runtime.cpu()).model
        built.append(sum(p.numel() for p in model.parameters() if p.requires_grad))
        del model
    assert printed == built
    assert built[0] > built[2] > built[1]  # r=320 > r=64 + audio encoder/projector > r=64

    entries = compare([str(tiny_configs[n]) for n in names])
    for e in entries:
        assert e.params.source.startswith("system count")
        assert e.params.percent == pytest.approx(100 * e.params.trainable / e.params.total)


def test_analytical_count_equals_peft_on_the_tiny_model(tiny_model_dir, tiny_configs):
    """The offline fallback (layer shapes on the meta device) against PEFT's real adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import Phi4MultimodalForCausalLM

    model = Phi4MultimodalForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=7, target_modules=PHI4_SPEECH_LORA_TARGETS))
    peft_lora = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)

    cfg = load_config(tiny_configs["paper_r64"], ["lora.rank=7"])
    assert analytical_count(cfg).groups["lora"] == (peft_lora, peft_lora)
    unfreeze = analytical_count(load_config(tiny_configs["unfreeze_r64"]))
    audio = sum(p.numel() for n, p in model.named_parameters() if ".audio_embed.encoder." in n)
    assert unfreeze.groups["audio_encoder"] == (audio, audio)


def test_shipped_presets_before_any_run_offline(capsys):
    """Phi-4-MM's hub id is not available here: the system counts its published architecture
    on the meta device, offline, and the LoRA count matches the layer shapes."""
    # Independently, from the published dimensions: hidden 3072, 24 heads of 128, 8 KV heads,
    # MLP 8192, 32 layers; per unit of rank each Linear adds in + out.
    h, hd, heads, kv, mlp, layers = 3072, 128, 24, 8, 8192, 32
    per_rank = layers * ((h + (heads + 2 * kv) * hd) + (h + h) + (h + 2 * mlp) + (mlp + h))
    assert per_rank == 1_441_792  # the figure in the project's reference notes

    assert main(["compare", "pretrained_r320", "paper_r64"]) == 0
    out = capsys.readouterr().out
    assert [first_int(c) for c in table_row(out, "trainable parameters")] == [320 * per_rank, 64 * per_rank]
    entries = compare(["unfreeze_r64"])
    assert entries[0].params.groups["lora"][0] == 64 * per_rank
    if local_model_dir(PHI4, "refs/pr/70") is None:
        assert entries[0].params.source.startswith("system count")


def test_model_unavailable_offline_is_na_not_a_crash(tmp_path):
    cfg = tmp_path / "elsewhere.yaml"
    cfg.write_text("base: paper_r64\nname: elsewhere\nmodel:\n  name_or_path: nobody/no-such-model\n")
    entries = compare([str(cfg), "paper_r64"])
    assert entries[0].params.trainable is None
    assert entries[0].params.note.startswith("n/a (model config not available offline")
    md = render_markdown(entries)
    assert table_row(md, "trainable parameters")[0].startswith("n/a (model config not available offline")


def _recorded_run(tmp_path, preset: str, results: dict[int, dict]):
    cfg = config_to_dict(load_config(preset))
    recs = [
        start_record(1e9, pid=1, host="gpu-box", name=preset),
        *step_records(1e9 + 5, [10, 20, 30], seed=1),
    ]
    for epoch, metrics in results.items():
        recs.append(
            {"event": "eval", "time": recs[-1]["time"] + 1, "step": 30, "epoch": epoch, "metrics": metrics}
        )
    recs.append({"event": "eval", "time": recs[-1]["time"] + 1, "step": 30, "epoch": 1, "split": "train",
                 "metrics": {"acc_pcc": 0.99}})  # fmt: skip
    recs.append({"event": "end", "time": recs[-1]["time"] + 1, "step": 30, "status": "finished"})
    return write_log(tmp_path / preset, recs, config=cfg)


def test_runs_side_by_side_with_the_papers_targets(tmp_path, capsys):
    a = _recorded_run(
        tmp_path, "paper_r64", {0: {"acc_pcc": -0.02, "wer": 0.9}, 1: {"acc_pcc": 0.5, "wer": 0.2}}
    )
    b = _recorded_run(tmp_path, "unfreeze_r64", {1: {"acc_pcc": 0.4, "wer": 0.25, "acc_n": 40, "per": "nan"}})
    entries = compare([str(a), str(b)])
    assert [e.kind for e in entries] == ["run", "run"]
    # counts of a run come from its start record (the model that was built)
    assert entries[0].params.trainable == 5000 and entries[0].params.total == 100_000

    headers, rows = results_rows(entries)
    assert headers == ["epoch", "metric", "paper_r64", "unfreeze_r64", "paper (lora)", "paper (unfreeze)"]
    table = {(r[0], r[1]): r[2:] for r in rows}
    # Ahn & Nam 2025, Table 3: no training -0.041 / 0.97; epoch 1 LoRA 0.547 / 0.150, Unfreeze 0.535 / 0.159
    assert table[(0, "acc_pcc")] == [-0.02, None, -0.041, -0.041]
    assert table[(1, "acc_pcc")] == [0.5, 0.4, 0.547, 0.535]  # not the train-split 0.99
    assert table[(1, "wer")] == [0.2, 0.25, 0.150, 0.159]
    assert (1, "acc_n") not in table  # counts are context, not results
    per = table[(1, "per")]  # undefined (nothing parsed) is shown as such, not dropped
    assert per[0] is None and math.isnan(per[1]) and per[2:] == [0.137, 0.199]

    assert main(["compare", str(a), str(b), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["results"]["headers"] == headers
    assert [e["status"]["state"] for e in data["entries"]] == ["finished", "finished"]


def test_bad_arguments_are_clear_errors(tmp_path):
    (tmp_path / "not_a_run").mkdir()
    with pytest.raises(LoralabError, match="not a run directory"):
        compare([str(tmp_path / "not_a_run")])
    with pytest.raises(ConfigError, match="paper_r64"):
        compare(["paper_r46"])
    assert main(["compare", "paper_r46"]) == 2
