"""Runs one entry point of the crm-scoring MLflow Project: resolves the project's file arguments, then `crmscore`.

`mlflow run` starts every entry point's command in this folder (``mlproject/``), with the run it opened in
``MLFLOW_RUN_ID``; the training jobs log into that run. Each command in ``MLproject`` is
``python run.py CRMSCORE-ARGS...``, and this script rewrites the arguments before running them:

* ``path`` parameters (the input data dir or table) arrive absolute: MLflow resolved them against the directory
  ``mlflow run`` was started from and checked that they exist. They are passed on unchanged.
* the options in :data:`PROJECT_RELATIVE` (``--config``, ``--out``) are ``string`` parameters: a relative value is
  resolved against the repository root (the folder above this one), so the defaults ``configs/lead.yaml`` and
  ``data/demo`` name the project's own files wherever ``mlflow run`` is started. A ``path`` parameter cannot
  have such a default: MLflow resolves defaults against the caller's working directory as well, and refuses
  them when nothing is there. An output folder cannot be a ``path`` either, since it need not exist yet.
* an option whose value is empty is left out: an empty parameter means "not given" (``-P id=``).

The project's code is imported from the repository root (put first on ``sys.path`` and ``PYTHONPATH``), so the
command runs this checkout's code in whichever environment MLflow activated: the project's venv with
``--env-manager local``, or the environment built from ``python_env.yaml`` (the runtime lock) with
``--env-manager virtualenv``. The ``crmscore`` entry point is the one ``pyproject.toml`` names.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: options whose relative values name a file or folder of the project (resolved against the repository root)
PROJECT_RELATIVE = frozenset({"--config", "--out"})


def resolve_args(args: list[str], root: Path = ROOT) -> list[str]:
    """``crmscore`` arguments with empty options dropped and :data:`PROJECT_RELATIVE` values made absolute.

    Only ``--option value`` pairs are rewritten (an option followed by another option is a flag); everything else
    is passed on as given.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "=" not in arg and i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
            i += 2
            if value == "":
                continue
            if arg in PROJECT_RELATIVE and not Path(value).is_absolute():
                value = str(root / value)
            out += [arg, value]
            continue
        out.append(arg)
        i += 1
    return out


def crmscore_main(root: Path = ROOT):
    """The ``crmscore`` console-script function named in ``pyproject.toml``, imported from ``root``."""
    pyproject = root / "pyproject.toml"
    try:
        target = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["scripts"]["crmscore"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
        raise SystemExit(f"mlproject/run.py: cannot read the crmscore entry point from {pyproject}: {e}") from None
    module, _, func = target.partition(":")
    sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    try:
        return getattr(importlib.import_module(module), func)
    except ImportError as e:
        raise SystemExit(
            f"mlproject/run.py: cannot import {target} with {sys.executable} ({e}). Run `mlflow run` from the "
            "project's venv (python3 dev.py setup; source .venv/bin/activate) with --env-manager local, "
            "or let MLflow build the environment with --env-manager virtualenv"
        ) from None


def main(argv: list[str]) -> None:
    """Run ``crmscore`` with the resolved ``argv``."""
    if not argv:
        raise SystemExit(__doc__)
    entry = crmscore_main()
    sys.argv = ["crmscore", *resolve_args(argv)]
    entry()


if __name__ == "__main__":
    main(sys.argv[1:])
