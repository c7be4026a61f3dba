import pandas as pd
import streamlit as st

import ui
from lenet import charts
from lenet.store import ACTIVE

ui.setup_page()
st.title("Live")
presenting = ui.presenting()
if not presenting:
    st.caption("Runs train in a background process: closing or refreshing this tab loses nothing.")

RECENT = 5  # finished runs kept on the charts beside the active ones, when showing every run
# the newest launch, unless the URL names another; None: every run
experiment_id = ui.choose_experiment(ui.workspace().store, every_run_option=True)


def live_charts():
    """The runs on screen and their four charts (built by `ui.shared_view` for all viewers)."""
    db = ui.workspace().store
    runs = db.list_runs(experiment_id=experiment_id)
    is_active = runs["status"].isin(ACTIVE)
    active = ui.in_training_order(runs[is_active])
    # an experiment is shown whole; "every run" keeps the recent ones
    shown = pd.concat([active, runs[~is_active].head(RECENT if experiment_id is None else None)])
    steps = db.step_metrics(shown["id"].tolist())
    epochs = db.epoch_metrics(shown["id"].tolist())
    labels = charts.short_labels(shown) if presenting else None
    figures = [
        charts.epoch_curves(epochs, shown, "accuracy", labels),
        charts.epoch_curves(epochs, shown, "loss", labels),
        charts.step_curves(steps, shown, "loss", labels),
        charts.step_curves(steps, shown, "accuracy", labels),
    ]
    if presenting:
        figures = [charts.for_projector(figure) for figure in figures]
    return runs, active.to_dict("records"), [ui.SharedFigure(figure) for figure in figures]


def progress_bars(runs, active: list[dict]) -> None:
    if runs.empty:
        st.info(
            "Nothing has been trained yet. Queue runs on the Train page, or launch the quick demo from Home."
        )
        return
    if not active and experiment_id is None:
        st.info(f"Nothing is training now. Showing the {min(RECENT, len(runs))} most recent runs.")
    elif not active:
        st.info("Nothing of this experiment is training now. Its results are on the Results page.")
    teacher = ui.is_teacher()
    for run in active:
        bar, stop = st.columns([6, 1])
        if run["status"] != "running":
            bar.progress(0.0, text=f"**{run['name']}** · queued")
            continue
        epoch_text = f"epoch {int(run['epochs_completed']) + 1}/{run['epochs']}"
        bar.progress(
            float(run["progress"]),
            text=f"**{run['name']}** · {epoch_text} · {ui.percent(run['progress'])} · {ui.run_state(run)}",
        )
        if teacher and not run["stop_requested"]:
            stop.button(
                "Stop",
                key=f"live_stop_{run['id']}",
                help="Stop after this batch; keeps the last full epoch.",
                on_click=ui.teacher_action,
                args=(ui.workspace().store.request_stop, int(run["id"])),
            )


def live_view() -> None:
    runs, active, figures = ui.shared_view(("live", experiment_id, presenting), live_charts)
    if presenting:  # the chart that shows overfitting first, above the fold; the details below
        left, right = st.columns(2)
        left.plotly_chart(figures[0], key="live_0")
        right.plotly_chart(figures[1], key="live_1")
        progress_bars(runs, active)
    else:
        progress_bars(runs, active)
        left, right = st.columns(2)
        left.plotly_chart(figures[0], key="live_0")
        right.plotly_chart(figures[1], key="live_1")
    if runs.empty:
        return
    left, right = st.columns(2)
    left.plotly_chart(figures[2], key="live_2")
    right.plotly_chart(figures[3], key="live_3")


ui.follow_store(live_view)
