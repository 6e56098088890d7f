"""`crmscore serve` (the BentoML scoring service) and `crmscore bento build` (a self-contained Bento)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal, NoReturn

import typer

from serving.cli import output
from serving.i18n import _

SERVICE = "serving.http.service:CRMScoring"
bento_app = typer.Typer(help="Pack the served models and the project into a Bento that runs without the registry.")


def _fail(message: object) -> NoReturn:
    output.fail(message)


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def server_env(
    settings_path: Path | None,
    workers: int,
    access_log: bool,
    pin: bool | None,
    poll_seconds: float | None,
    registry_uri: str,
) -> dict[str, str]:
    """Environment of the BentoML server process: service settings, registry, worker count."""
    import json

    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = registry_uri
    env.setdefault("MLFLOW_REGISTRY_URI", registry_uri)
    if settings_path is not None:
        env["CRMSCORE_SERVING_CONFIG"] = str(settings_path.resolve())
    if pin is not None:
        env["CRMSCORE_PIN_MODELS"] = "1" if pin else "0"
    if poll_seconds is not None:
        env["CRMSCORE_POLL_SECONDS"] = str(poll_seconds)
    env.setdefault("CRMSCORE_HOME", str(Path(".crmscore").resolve()))
    env["CRMSCORE_WORKERS"] = str(workers)  # the workers share service-wide limits (rate_limit_per_key) out
    ours = {"services": {"CRMScoring": {"workers": workers, "logging": {"access": {"enabled": access_log}}}}}
    user = json.loads(env.get("BENTOML_CONFIG_OVERRIDES") or "{}")  # the user's overrides win
    env["BENTOML_CONFIG_OVERRIDES"] = json.dumps(_deep_merge(ours, user))
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _train_missing(data: Path) -> None:
    """Train lead and churn models on ``data`` when the registry has no champion for them."""
    from features.io import DataDirError
    from training.config import TrainConfig
    from training.registry import CHAMPION, get_alias_version
    from training.train import train_crm

    champions: tuple[tuple[Literal["lead", "churn"], str], ...] = (("lead", "lead_scoring"), ("churn", "churn_risk"))
    for task, name in champions:
        if get_alias_version(name, CHAMPION) is not None:
            continue
        typer.echo(_("no {model} in the registry: training it on {data} ...").format(
            model=f"{name}@{CHAMPION}", data=data
        ))
        try:
            r = train_crm(data, TrainConfig(task=task))
        except (DataDirError, ValueError) as e:
            _fail(_("training {name} on {data} failed: {error}").format(
                name=name, data=data, error=output.localized(e)
            ))
        typer.echo("  " + _("{model} v{version} ({candidate}), test ROC-AUC {auc:.3f}").format(
            model=r.model_name, version=r.version, candidate=r.best_candidate, auc=r.test_metrics["roc_auc"]
        ))


def serve_cmd(
    port: int = typer.Option(3000, "--port", help="HTTP port"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on (0.0.0.0 for all)"),
    workers: int | None = typer.Option(None, "--workers", min=1, help="worker processes (default: config, 1)"),
    data: Path | None = typer.Option(
        None, "--data", help="data dir: trains lead/churn champions from it first when the registry has none, "
        "and is passed to the workers as $CRMSCORE_DATA_DIR",
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="time the profile page /ui scores at (default: the latest event time in --data)"
    ),
    config: Path | None = typer.Option(None, "--config", help="configs/serving.yaml"),
    pin: bool | None = typer.Option(None, "--pin/--follow", help="keep the start-up versions / follow the alias"),
    poll_seconds: float | None = typer.Option(None, "--poll-seconds", help="how often the champion is checked"),
    access_log: bool | None = typer.Option(None, "--access-log/--no-access-log", help="BentoML access log"),
) -> None:
    """Serve lead scores, churn risk and segments over HTTP (BentoML) from the registry's champions."""
    import secrets

    from features.config import ConfigError
    from serving.settings import load_api_keys, load_settings, redact_uri
    from training.registry import configure_tracking

    try:
        settings = load_settings(config)
        keys = load_api_keys()
    except (ConfigError, FileNotFoundError) as e:
        _fail(e)
    if as_of is not None:
        import pandas as pd

        if data is None and not settings.data_dir:
            _fail(_("--as-of needs --data (the data dir the profile page shows)"))
        try:
            pd.Timestamp(as_of)
        except (ValueError, TypeError):
            _fail(_("--as-of: not a date or time: {value!r} (e.g. 2025-06-30 or 2025-06-30T18:00:00)").format(
                value=as_of
            ))
    uri = configure_tracking(settings.registry_uri)
    if data is not None:
        if not data.is_dir():
            _fail(_("data dir not found: {path}").format(path=data))
        _train_missing(data)
    env = server_env(
        config,
        workers or settings.workers,
        settings.access_log if access_log is None else access_log,
        pin,
        poll_seconds,
        uri,
    )
    if data is not None:
        env["CRMSCORE_DATA_DIR"] = str(data.resolve())
    if as_of is not None:
        env["CRMSCORE_AS_OF"] = as_of
    if not keys and not _keys_file_has_keys():
        key = secrets.token_urlsafe(24)
        env["CRMSCORE_API_KEYS"] = key
        typer.echo(
            _("no CRMSCORE_API_KEYS set: generated a key for this run (Authorization: Bearer {key})").format(key=key),
            err=True,
        )
    shown = redact_uri(uri)  # never print a database password
    typer.echo(_("serving {service} on {url} (registry {registry}, workers {workers})").format(
        service=SERVICE, url=f"http://{host}:{port}", registry=shown, workers=workers or settings.workers
    ))
    if data is not None or settings.data_dir:
        typer.echo(_("customer profile page: {url}").format(url=f"http://{host}:{port}/ui"))
    argv = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--port", str(port), "--host", host]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


@bento_app.command("build")
@output.command
def bento_build_cmd(
    bentofile: Path = typer.Option(Path("bentofile.yaml"), "--bentofile", help="build options"),
    config: Path | None = typer.Option(None, "--config", help="configs/serving.yaml (model names, alias)"),
    version: str | None = typer.Option(None, "--version", help="Bento version (default: generated)"),
) -> None:
    """Import the champions into the BentoML model store and build a Bento with them and the project code."""
    import yaml

    from features.config import ConfigError
    from serving.http.loader import pack_models
    from serving.settings import load_settings

    if not bentofile.is_file():
        output.fail(_("bentofile not found: {file}").format(file=bentofile))
    try:
        settings = load_settings(config)
    except ConfigError as e:
        output.fail(e)
    from bentoml.exceptions import BentoMLException
    from mlflow.exceptions import MlflowException

    try:
        tags = pack_models(settings)
    except (BentoMLException, MlflowException, OSError) as e:
        output.fail(_("packing the models failed: {error}").format(error=e))
    if not any(t.split(":")[0] in (settings.models.lead, settings.models.churn) for t in tags):
        output.fail(_("neither {lead} nor {churn} has a '{alias}' version to pack").format(
            lead=settings.models.lead, churn=settings.models.churn, alias=settings.alias
        ))
    for t in tags:
        output.echo(_("packed {tag}").format(tag=t))
    import tempfile

    import bentoml

    opts = yaml.safe_load(bentofile.read_text(encoding="utf-8")) or {}
    opts["models"] = tags  # exactly the versions packed now (a missing segments model is left out)
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "bentofile.yaml"
        spec.write_text(yaml.safe_dump(opts, allow_unicode=True), encoding="utf-8")
        try:
            bento = bentoml.bentos.build_bentofile(str(spec), build_ctx=str(bentofile.resolve().parent),
                                                   version=version)
        except (BentoMLException, OSError, ValueError) as e:
            output.fail(_("bentoml build failed: {error}").format(error=e))
    output.summary(
        {"bento": str(bento.tag), "models": tags, "path": getattr(bento, "path", None)},
        _("built Bento {tag}: run it with `bentoml serve {tag}` (no registry needed)").format(tag=bento.tag),
    )


def _keys_file_has_keys() -> bool:
    """Whether the keys file (docs/access.md) holds a key: then no shared key is generated for the run."""
    from serving.access.keys import KeysFileError, KeyStore, keys_file_path

    try:
        return len(KeyStore(keys_file_path())) > 0
    except KeysFileError:
        return False


def register(app: typer.Typer) -> None:
    """Add `serve` and the `bento` group to the root app."""
    app.command("serve")(serve_cmd)
    app.add_typer(bento_app, name="bento")
