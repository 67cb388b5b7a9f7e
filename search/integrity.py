"""Rows of an RDB storage that Optuna cannot read, found when the storage is opened.

Optuna trusts its tables: a trial value that is NULL while its type says finite (written by
hand, by another tool, or a damaged file) stops every read of the study with a bare
`AssertionError` deep inside Optuna, so `studies`, `report`, `export` and `run` all failed
with a traceback. The check below names the row instead, in one `UsageError`, and changes
nothing.
"""

from __future__ import annotations

from typing import Any

from search.errors import UsageError

# (what is wrong, what the detail is, SQL giving the trial number and that detail)
_CHECKS = (
    (
        "a NULL objective value",
        "objective",
        "SELECT t.number, v.objective FROM trial_values v JOIN trials t "
        "ON t.trial_id = v.trial_id WHERE (v.value IS NULL AND v.value_type = 'FINITE') "
        "OR (v.value IS NOT NULL AND v.value_type <> 'FINITE')",
    ),
    (
        "a NULL intermediate value",
        "step",
        "SELECT t.number, v.step FROM trial_intermediate_values v JOIN trials t "
        "ON t.trial_id = v.trial_id WHERE (v.intermediate_value IS NULL "
        "AND v.intermediate_value_type = 'FINITE') OR (v.intermediate_value IS NOT NULL "
        "AND v.intermediate_value_type <> 'FINITE')",
    ),
    (
        "a NULL parameter value",
        "parameter",
        "SELECT t.number, p.param_name FROM trial_params p JOIN trials t "
        "ON t.trial_id = p.trial_id WHERE p.param_value IS NULL OR p.distribution_json IS NULL",
    ),
    (
        "a NULL attribute value",
        "attribute",
        "SELECT t.number, a.key FROM trial_user_attributes a JOIN trials t "
        "ON t.trial_id = a.trial_id WHERE a.value_json IS NULL",
    ),
    (
        "a NULL attribute value",
        "attribute",
        "SELECT t.number, a.key FROM trial_system_attributes a JOIN trials t "
        "ON t.trial_id = a.trial_id WHERE a.value_json IS NULL",
    ),
    ("a NULL trial number", "state", "SELECT trial_id, state FROM trials WHERE number IS NULL"),
)
_STUDY_CHECKS = (
    "SELECT key FROM study_user_attributes WHERE value_json IS NULL",
    "SELECT key FROM study_system_attributes WHERE value_json IS NULL",
)


def check_rows(engine: Any, shown_url: str) -> None:
    """Raise UsageError naming the first row Optuna could not read; read only."""
    import sqlalchemy

    with engine.connect() as conn:
        for what, label, query in _CHECKS:
            row = conn.execute(sqlalchemy.text(query + " LIMIT 1")).first()
            if row is not None:
                raise UsageError(
                    f"the storage {shown_url} is damaged: trial {row[0]} holds {what} "
                    f"({label} {row[1]}), which Optuna cannot read; restore a copy, or repair or "
                    "delete that row"
                )
        for query in _STUDY_CHECKS:
            row = conn.execute(sqlalchemy.text(query + " LIMIT 1")).first()
            if row is not None:
                raise UsageError(
                    f"the storage {shown_url} is damaged: the study attribute {row[0]!r} is "
                    "NULL, which Optuna cannot read; restore a copy, or repair or delete that row"
                )
