"""The Monitor tab (only when the operator turned monitoring on): the last analysed faces against
the training reference, as plots and one statistical test per feature (``fer_demo.monitor``)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from fer_demo.monitor import DRIFT_P, MonitorLog, drift_table, monitor_figure, read_reference

DEFAULT_LAST = 500


def monitor_view(monitor: MonitorLog, reference: pd.DataFrame | None, last: int) -> tuple[str, object, pd.DataFrame]:
    """(summary markdown, figure, drift table) for the last ``last`` records."""
    current = monitor.read(int(last))
    if reference is None:
        table = pd.DataFrame(columns=["feature", "test", "statistic", "p_value", "drifted"])
        head = "No reference statistics next to the weights (`reference.csv.gz`): nothing to compare with."
    else:
        table = drift_table(current, reference)
        drifted = table.loc[table["drifted"], "feature"].tolist()
        head = (f"**{len(current)} faces** in the log's last {int(last)} records. "
                + (f"Drifted from the reference (p < {DRIFT_P}): **{', '.join(drifted)}**." if drifted
                   else "No feature drifted from the reference." if len(current) >= 2
                   else "Too few faces to test."))
    if not table.empty:  # for people: 3 decimals, p-values in 2 significant digits
        table = table.assign(statistic=table["statistic"].round(3), p_value=table["p_value"].map(lambda p: f"{p:.2g}"))
    return head, monitor_figure(current, reference), table


def build_monitor_tab(monitor: MonitorLog, reference_path: str | Path):
    """Lay out the tab (inside the caller's ``gr.Tab``); Refresh reads the log again.

    Returns ``(show, inputs, outputs)`` so the caller can also refresh when the tab is opened.
    """
    reference = read_reference(reference_path)
    gr.Markdown("What this deployment has seen, against what the model was evaluated on (PublicTest, "
                "`reference.csv.gz` beside the weights). The log holds no pixels and nothing that identifies "
                "anyone; `python -m fer_demo monitor --log LOG` builds the full Evidently report.")
    with gr.Row():
        last = gr.Number(value=DEFAULT_LAST, precision=0, minimum=2, maximum=100_000, label="Last N records",
                         elem_id="monitor-last")
        refresh = gr.Button("Refresh", elem_id="monitor-refresh")
    summary = gr.Markdown(elem_id="monitor-summary")
    plot = gr.Plot(show_label=False, elem_id="monitor-plot", format="png")
    table = gr.Dataframe(label="One test per feature", interactive=False, elem_id="monitor-table")

    def show(n: float) -> tuple:
        return monitor_view(monitor, reference, int(n or DEFAULT_LAST))

    outputs = [summary, plot, table]
    refresh.click(show, inputs=[last], outputs=outputs, api_visibility="private", queue=False)
    return show, [last], outputs
