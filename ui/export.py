"""The Compare page's Export panel: one model of a run in every runtime format, each re-scored in its own
runtime, with a download per file; an export already on disk is shown without running it again."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from core import config, paths
from core.export_formats import FORMATS, FormatReport
from core.progress import clock
from core.records import ModelResult, Run
from core.store import Store
from ui.guard import plain

CARD_FILES = {"labels.txt": "text/plain", "model_card.md": "text/markdown", "model_card.json": "application/json"}


def saved_export(folder: Path) -> list[FormatReport]:
    """The formats of the export in `folder`, from its model card, whose files are still there."""
    card = folder / "model_card.json"
    if not card.is_file():
        return []
    try:
        entries = [FormatReport(**entry) for entry in json.loads(card.read_text())["formats"]]
    except (ValueError, KeyError, TypeError):  # a card written by another version: export again
        return []
    return [entry for entry in entries if entry.error or (folder / entry.download).exists()]


def export_panel(store: Store, run: Run, result: ModelResult) -> None:
    """Choose formats, export `result` of `run`, and show the report and the downloads."""
    st.subheader(f"Export {result.model}")
    st.caption(
        f"A standalone model: uint8 RGB images ({result.input_size}×{result.input_size}) in, the "
        f"{len(result.classes)} class probabilities out, preprocessing inside. Each file is loaded back in its own "
        "runtime and re-scored on the test images."
    )
    folder = paths.exports(run.id, result.model)
    names = st.multiselect(
        "Formats",
        list(FORMATS),
        default=list(FORMATS),
        format_func=lambda name: FORMATS[name].label,
        key=f"export-formats-{run.id}-{result.model}",
    )
    if st.button("Export", icon=":material/output:", disabled=not names, key=f"export-{run.id}-{result.model}"):
        run_export(store, run.id, result.model, names)
    entries = saved_export(folder)
    if entries:
        export_report(folder, entries)
    else:
        st.caption("Not exported yet.")


def run_export(store: Store, run_id: int, model: str, names: list[str]) -> None:
    from core.export import export_model

    with st.status(f"Exporting {model} in {len(names)} format(s)… (about a minute)", expanded=True) as status:
        bar = st.progress(0.0, text="starting")
        try:
            report = export_model(
                run_id, model, names, store=store, on_progress=lambda done, text: bar.progress(min(done, 1.0), text)
            )
        except (ValueError, OSError) as error:
            status.update(label=f"Export failed: {plain(error)}", state="error")
            return
        failed = f", {len(report.failed)} failed" if report.failed else ""
        status.update(
            label=f"Exported {model} in {clock(report.seconds)}{failed}",
            state="error" if report.failed else "complete",
            expanded=False,
        )


def export_report(folder: Path, entries: list[FormatReport]) -> None:
    """The per-format table, the flags and failures, and a download button per file."""
    table = pd.DataFrame(
        [
            {
                "format": entry.label,
                "file": entry.download,
                "size_mb": entry.size_bytes and entry.size_bytes / 1e6,
                "accuracy": entry.test_accuracy and entry.test_accuracy * 100,
                "change": None if entry.accuracy_change is None else entry.accuracy_change * 100,
                "difference": entry.max_probability_difference,
                "latency_ms": entry.latency_ms,
                "flag": "⚠ dropped > 1 point" if entry.flagged else ("✖ failed" if entry.error else "✓"),
            }
            for entry in entries
        ]
    )
    number = st.column_config.NumberColumn
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "size_mb": number("size (MB)", format="%.2f"),
            "accuracy": number("test accuracy %", format="%.1f", help="re-scored in its own runtime"),
            "change": number("vs sweep (points)", format="%+.1f", help="test accuracy minus the sweep's"),
            "difference": number("max prob. difference", format="%.1e", help="relative, vs the in-app model"),
            "latency_ms": number("latency (ms)", format="%.2f", help="batch 1, this host"),
        },
    )
    for entry in entries:
        if entry.flagged:
            st.warning(
                f"**{entry.label}** loses {-entry.accuracy_change * 100:.1f} points against the sweep "
                f"({entry.test_accuracy:.1%}): check it on your own images before shipping it.",
                icon=":material/warning:",
            )
        if entry.error:
            st.error(f"**{entry.label}**: {plain(entry.error)}", icon=":material/error:")
    downloads = [(entry.download, "application/octet-stream") for entry in entries if not entry.error]
    downloads += [(name, mime) for name, mime in CARD_FILES.items() if (folder / name).exists()]
    cols = st.columns(4)
    for i, (name, mime) in enumerate(downloads):
        path = folder / name
        cols[i % 4].download_button(
            name,
            data=lambda path=path: path.read_bytes(),
            file_name=path.name,
            mime=mime,
            icon=":material/download:",
            on_click="ignore",
            key=f"download-{folder}-{name}",
        )
    if not config.hosted():  # a shared app shows no server paths
        st.caption(f"Files in `{folder}`.")
    card = folder / "model_card.md"
    if card.exists():
        with st.expander("Model card", icon=":material/description:"):
            st.code(card.read_text(), language="markdown", wrap_lines=True)
