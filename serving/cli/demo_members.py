"""The member programme's part of `crmscore demo`: `members apply`, `tags apply` (with the demo's manual-tags
file) and one `audience export`, each run as the command itself on the demo data, with their counts printed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from serving.i18n import _

#: the demo's audience: high-value customers at churn risk, silver or above
DEMO_AUDIENCE = "tag:高价值流失风险 and member_level>=silver"


def run_members_demo(data: Path, as_of: Any, out: Path, echo: Callable[..., Any] = typer.echo) -> dict[str, Any]:
    """Member levels, tags and one audience of the demo data as of ``as_of``, written under ``out``."""
    from features.synth.member_inputs import MANUAL_TAGS_FILE
    from serving.cli.audience import export_cmd
    from serving.cli.members import apply_cmd as members_apply
    from serving.cli.tags import apply_cmd as tags_apply

    t = str(as_of)
    members, tags, audience = out / "members", out / "tags", out / "audience_high_value_churn_risk.csv"
    manual = data / MANUAL_TAGS_FILE
    echo("[members] " + _("member levels, tags (manual tags from {file}) and one audience as of {as_of}:").format(
        file=manual.name, as_of=t
    ))
    members_apply(data=data, as_of=t, out=members, previous=None, manual=None, config=None)
    tags_apply(data=data, as_of=t, out=tags, members=members, scores=[], previous=None,
               manual=manual if manual.is_file() else None, remove=None, csv=False, config=None,
               members_config=None, segment_config=None)
    export_cmd(data=data, tags=tags, out=audience, where=DEMO_AUDIENCE, lead_grade=None, churn_grade=None,
               segment=None, purpose="marketing", columns="member_level_zh,progress", include_pii=False,
               name="demo-high-value-churn-risk", mlflow_log=True)
    levels = json.loads((members / "summary.json").read_text(encoding="utf-8"))["levels"]
    aud = json.loads(audience.with_suffix(".summary.json").read_text(encoding="utf-8"))
    return {"levels": levels, "audience_exported": aud["exported"], "audience_matched": aud["matched"]}
