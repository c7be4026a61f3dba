import pandas as pd
import streamlit as st

import ui
from lenet import charts
from lenet.store import ACTIVE

ui.setup_page()
st.title("Live")
st.caption("Runs train in a background process: closing or refreshing this tab loses nothing.")

RECENT = 5  # finished runs kept on the charts beside the active ones
# the newest launch, unless the URL names another; None: every run
experiment_id = ui.choose_experiment(ui.workspace().store, every_run_option=True)


@st.cache_resource(max_entries=8, show_spinner=False)
def live_charts(home: str, experiment_id: int | None, revision: tuple):
    """The runs on screen and their four charts, built once per store revision for every viewer
    (a class watching the teacher's URL shares them). Shared: never mutate."""
    db = ui.workspace().store
    runs = db.list_runs(experiment_id=experiment_id)
    is_active = runs["status"].isin(ACTIVE)
    active = ui.in_training_order(runs[is_active])
    shown = pd.concat([active, runs[~is_active].head(RECENT)])
    steps = db.step_metrics(shown["id"].tolist())
    epochs = db.epoch_metrics(shown["id"].tolist())
    figures = (
        charts.epoch_curves(epochs, shown),
        charts.epoch_curves(epochs, shown, "loss"),
        charts.step_curves(steps, shown, "loss"),
        charts.step_curves(steps, shown, "accuracy"),
    )
    return runs, active, figures


def live_view() -> None:
    ws = ui.workspace()
    runs, active, figures = live_charts(str(ws.home), experiment_id, ws.store.revision())
    if runs.empty:
        st.info(
            "Nothing has been trained yet. Queue runs on the Train page, or launch the quick demo from Home."
        )
        return
    if active.empty:
        st.info(f"Nothing is training now. Showing the {min(RECENT, len(runs))} most recent runs.")
    teacher = ui.is_teacher()
    for _, run in active.iterrows():
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
                args=(ws.store.request_stop, int(run["id"])),
            )
    # train vs validation first: the chart that shows overfitting
    for first in (0, 2):
        left, right = st.columns(2)
        left.plotly_chart(figures[first], key=f"live_{first}")
        right.plotly_chart(figures[first + 1], key=f"live_{first + 1}")


ui.follow_store(live_view)
