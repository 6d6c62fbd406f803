"""The configuration reference (docs/configuration.md), generated from the config models so it cannot drift.

``tests/config/test_shipped_configs.py`` checks that docs/configuration.md holds exactly this
text; after changing a field, ``python -m compound.config.reference docs/configuration.md``
rewrites the page's "Reference" section (everything after its heading).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from compound.config import RunConfig


def reference_markdown() -> str:
    """The configuration reference (docs/configuration.md), generated from the models so it cannot drift."""
    lines: list[str] = []
    top = [(name, f) for name, f in RunConfig.model_fields.items() if not _is_section(f.annotation)]
    lines += ["| key | default | meaning |", "|---|---|---|"]
    lines += [_reference_row(name, f) for name, f in top]
    def section(prefix: str, model: type[BaseModel]) -> None:
        lines.extend(["", f"**`{prefix}:`**", "", "| key | default | meaning |", "|---|---|---|"])
        nested = []
        for k, sub in model.model_fields.items():
            if _is_section(sub.annotation):
                nested.append((f"{prefix}.{k}", sub.annotation))
            else:
                lines.append(_reference_row(f"{prefix}.{k}", sub))
        for name, sub_model in nested:
            section(name, sub_model)

    for name, f in RunConfig.model_fields.items():
        if _is_section(f.annotation):
            section(name, f.annotation)
    return "\n".join(lines)


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _reference_row(key: str, field: Any) -> str:
    default = _plain(field.get_default(call_default_factory=True))
    return f"| `{key}` | `{default!r}` | {field.description or ''} |"


def write_reference(page: str | Path, heading: str = "## Reference") -> None:
    """Replace everything after ``heading`` in the Markdown file ``page`` with the current reference."""
    path = Path(page)
    text = path.read_text(encoding="utf-8")
    if heading not in text:
        raise SystemExit(f"{path}: no '{heading}' heading to write the reference under")
    head = text[: text.index(heading) + len(heading)]
    path.write_text(f"{head}\n\n{reference_markdown()}\n", encoding="utf-8")


if __name__ == "__main__":
    write_reference(sys.argv[1] if len(sys.argv) > 1 else "docs/configuration.md")
