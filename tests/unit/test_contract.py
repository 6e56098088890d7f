"""The data contract: tables, PII flags and required fields."""

import pandas as pd
import pytest

from features.contract import PII_COLUMNS, TABLES, drop_pii, empty_frame, get_table


def test_four_tables_with_keys_and_required_fields():
    assert set(TABLES) == {"customers", "interactions", "orders", "marketing_touches"}
    for spec in TABLES.values():
        assert spec.required, spec.name
        assert set(spec.key) <= set(spec.column_names)
        assert "customer_id" in spec.column_names


def test_pii_is_exactly_the_customer_contact_fields_and_feedback_text():
    assert PII_COLUMNS == {"name", "phone", "email", "address", "text"}
    assert get_table("feedback").column("text").pii
    df = pd.DataFrame({"customer_id": ["a"], "name": ["张三"], "phone": ["138"], "age": [30]})
    assert list(drop_pii(df).columns) == ["customer_id", "age"]


def test_unknown_table_is_named():
    with pytest.raises(KeyError, match="unknown table 'leads'"):
        get_table("leads")


def test_empty_frame_has_contract_columns():
    df = empty_frame("orders")
    assert list(df.columns) == get_table("orders").column_names
    assert len(df) == 0
