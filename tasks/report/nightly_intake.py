"""The nightly report's sections on what the night took in: the drop folder (named, its
files counted) and the data checks of tonight's new rows, with the rows excluded from
learning (tasks/nightly/intake.py holds the rule)."""

from __future__ import annotations

import pandas as pd

from addgp.nightly import InboxFolder
from tasks.report.content import ordered_data_checks
from tasks.report.model import Block, Column, Inline, Paragraph, Section, Span, Table
from tasks.report.sections import checks_section, name_cell


def inbox_section(inbox: InboxFolder | None) -> Section | None:
    """Which drop folder was read and how many files it holds (a wrong path shows here)."""
    if inbox is None:
        return None
    created = " It did not exist and was created tonight (nightly.create_inbox: true)." if inbox.created else ""
    text: list[Inline] = [
        "Drop folder ",
        Span(str(inbox.folder), "code"),
        f": {inbox.n_files} file(s) (audio and sidecars) in it tonight.{created}",
    ]
    return Section("inbox", "Inbox", [Paragraph(text, note=False)])


def night_checks_section(checks: pd.DataFrame | None, excluded: pd.DataFrame | None) -> Section | None:
    """The data checks of the configured corpora plus tonight's new rows, and every excluded row."""
    if checks is None:
        return None
    extra: list[Block] = []
    if excluded is not None and len(excluded):
        extra = [
            Paragraph(
                [
                    f"{len(excluded)} new row(s) have the same audio as an eval file and were excluded from "
                    "tonight's rows (neither learnt from nor held out):"
                ]
            ),
            Table(
                "excluded-rows",
                [Column("new row", True), Column("batch", True), Column("label", True), Column("same audio as", True)],
                [
                    [name_cell(r.utt_id), name_cell(r.batch_id or ""), name_cell(r.label), name_cell(r.also_in)]
                    for r in excluded.itertuples()
                ],
            ),
        ]
    return checks_section(ordered_data_checks(checks), "on the corpora and tonight's new rows", extra)
