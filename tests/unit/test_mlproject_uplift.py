"""The `train_uplift` entry point of mlproject/MLproject, checked without `mlflow run`: its command, rendered with
its defaults and passed through mlproject/run.py's argument rewriting, is a valid `crmscore train uplift` call.
(tests/integration/test_mlproject.py runs the entry points themselves.)"""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import typer
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_train_uplift_entry_point_renders_to_the_train_uplift_command(tmp_path: Path) -> None:
    from serving.cli.main import app

    entry = yaml.safe_load((ROOT / "mlproject" / "MLproject").read_text(encoding="utf-8"))["entry_points"]
    spec = entry["train_uplift"]
    assert spec["parameters"]["data"] == "path"
    values = {k: ("" if v == "path" else str(v["default"])) for k, v in spec["parameters"].items()}
    values["data"] = str(tmp_path)
    # MLflow quotes each value for the shell (an empty one is '')
    argv = shlex.split(spec["command"].format(**{k: shlex.quote(v) for k, v in values.items()}))
    assert argv[:2] == ["python", "run.py"]
    mod_spec = importlib.util.spec_from_file_location("mlproject_run", ROOT / "mlproject" / "run.py")
    assert mod_spec is not None and mod_spec.loader is not None
    run = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(run)
    args = run.resolve_args(argv[2:])
    # the empty campaign is left out (the latest randomised campaign is used); the rest are the command's options
    assert args == ["train", "uplift", "--data", str(tmp_path), "--window", "14", "--name", "coupon_uplift",
                    "--bootstrap", "200"]  # fmt: skip
    train = typer.main.get_command(app).commands["train"].commands["uplift"]  # type: ignore[attr-defined]
    ctx = train.make_context("uplift", args[2:])
    assert ctx.params["data"] == tmp_path and ctx.params["window"] == 14 and ctx.params["campaign"] is None
