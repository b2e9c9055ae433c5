"""Whether a row file has the columns its schema needs, from the parquet footer alone.

A stage that loads a model first and reads its rows second would report a file of the wrong kind
(SFT rows given to RL, say) only after the load, and as a puzzle ("3 prompts cannot fill one step",
every row quarantined). `require_columns` reads the schema in the footer, so the CLI checks it first.
"""

from __future__ import annotations

from codedance_core.data.schemas import SCHEMA_MODELS, SchemaName
from codedance_core.errors import UserError

# Other spellings the row models accept for a field (see schemas.py).
_SPELLINGS = {"rl": {"prompt": ("prompt", "messages")}, "eval": {"images": ("images", "image")}}


class MissingColumnsError(UserError):
    """A row file without a column its schema requires."""


def required_columns(schema: SchemaName) -> list[tuple[str, ...]]:
    """For each required field of the schema's row model, the column names that can hold it."""
    model = SCHEMA_MODELS[schema]
    spellings = _SPELLINGS.get(schema, {})
    return [spellings.get(name, (name,)) for name, field in model.model_fields.items() if field.is_required()]


def require_columns(uri: str, schema: SchemaName) -> int:
    """The file's row count when it has every required column; MissingColumnsError naming the absent ones.

    NotParquetError when the file is absent or not parquet (from `open_parquet`)."""
    from codedance_core.data.io import open_parquet

    with open_parquet(uri) as source:
        present = set(source.schema.names)
        rows = source.num_rows
    missing = [" or ".join(names) for names in required_columns(schema) if not present & set(names)]
    if missing:
        raise MissingColumnsError(
            f"{uri} lacks the column(s) {', '.join(missing)} of {schema.upper()} rows "
            f"(it has: {', '.join(sorted(present)) or 'none'})",
            f"pass a parquet of {schema.upper()} rows; `codedance data validate --schema {schema} FILE` checks one",
        )
    return rows
