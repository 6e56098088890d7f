"""`crmscore recommend`: batch cross-sell recommendations with evidence in words, from the registered model."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output as cli_output
from serving.i18n import _


def recommend_cmd(
    input: Path = typer.Option(..., "--input", help="customers CSV or Parquet with a customer_id column"),
    output: Path = typer.Option(..., "--output", help="recommendations CSV: customer_id, rank, sku, evidence …"),
    data: Path = typer.Option(..., "--data", help="data dir with orders and order_items (purchase histories)"),
    model: str = typer.Option("models:/cross_sell@champion", "--model", help="registered cross-sell model URI"),
    k: int = typer.Option(10, "--k", min=1, max=100, help="products per customer"),
    exclude_days: int = typer.Option(30, "--exclude-days", min=0, help="leave out what was bought in the last N days"),
    as_of: str | None = typer.Option(None, "--as-of", help="read purchases up to T (default: the last one)"),
    neutralise: bool = typer.Option(
        True, "--neutralise/--no-neutralise", help="prefix CSV cells starting with = + - @ with ' (spreadsheet "
        "formula injection); turn off only for machine consumers"
    ),
) -> None:
    """Top-k products per customer, each with the evidence behind it, leaving out recent purchases.

    Runs as the principal of ``$CRMSCORE_KEY`` (else the local operator): the role needs ``export_lists``; the
    export is written to the audit trail (docs/access.md)."""
    import time

    import pandas as pd

    from features.contract import PII_COLUMNS
    from features.members.outputs import write_csv_atomic
    from serving.access.exports import record_export
    from training.cross_sell import CrossSellConfig, CrossSellDataError, load_lines
    from training.cross_sell_job import load_model, recommend
    from training.registry import configure_tracking

    principal = cli_output.require_permission("export_lists")
    t0 = time.perf_counter()
    try:
        if not input.is_file():
            raise ValueError(f"--input: file not found: {input}")
        df = (
            pd.read_parquet(input)
            if input.suffix.lower() in (".parquet", ".pq")
            else pd.read_csv(input, dtype=str, encoding="utf-8-sig")
        )
        if "customer_id" not in df.columns:
            raise ValueError(
                f"--input {input}: no customer_id column (columns: "
                f"{', '.join(str(c) for c in df.columns if c not in PII_COLUMNS)[:300]})"
            )
        ids = df["customer_id"].astype("string").str.strip()
        if ids.isna().any() or (ids == "").any():
            row = int((ids.isna() | (ids == "")).to_numpy().argmax()) + 2
            raise ValueError(f"--input {input}: customer_id is blank on row {row}")
        t = None
        if as_of is not None:
            t = pd.Timestamp(as_of)
        configure_tracking()
        try:
            m = load_model(model)
        except Exception as e:  # noqa: BLE001 - MLflow raises several types for a missing model
            raise ValueError(f"--model {model}: cannot load it ({str(e).splitlines()[0][:200]})") from None
        # the service's reading: the model's items (products or their categories), non-product codes left out
        lines = load_lines(data, CrossSellConfig().exclude_skus, item=m.item)
        recs = recommend(m, lines, pd.Index(ids.drop_duplicates()), t, k, exclude_days)
    except (CrossSellDataError, ValueError) as e:
        cli_output.fail(e)
    write_csv_atomic(recs, output, neutralise=neutralise)
    record_export("export_lists", principal, [output], ids.drop_duplicates().astype(str).tolist(),
                  fields=[str(c) for c in recs.columns], command="recommend", rows=len(recs))
    n = recs["customer_id"].nunique() if len(recs) else 0
    result = {"output": str(output), "recommendations": len(recs), "customers_with_recommendations": int(n),
              "customers": int(ids.nunique()), "seconds": round(time.perf_counter() - t0, 2)}
    cli_output.summary(result, lambda: _(
        "{recommendations:,} recommendations for {customers_with_recommendations:,} of {customers:,} customers → "
        "{output} ({seconds:.1f}s)"
    ).format(**result))


def register(app: typer.Typer) -> None:
    """Add the `recommend` command to the root app."""
    app.command("recommend")(cli_output.command(recommend_cmd))
