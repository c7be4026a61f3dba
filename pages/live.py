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
active_at_start = not ui.workspace().store.list_runs(ACTIVE, experiment_id=experiment_id).empty


# Poll once a second while something trains; a static page otherwise.
@st.fragment(run_every="1s" if active_at_start else None)
def live_view() -> None:
    db = ui.workspace().store
    runs = db.list_runs(experiment_id=experiment_id)
    is_active = runs["status"].isin(ACTIVE)
    active = ui.in_training_order(runs[is_active])
    if active.empty and active_at_start:
        st.rerun()  # everything finished: redraw the whole page once, without polling
    shown = pd.concat([active, runs[~is_active].head(RECENT)])
    if runs.empty:
        st.info(
            "Nothing has been trained yet. Queue runs on the Train page, or launch the quick demo from Home."
        )
        return
    if active.empty:
        st.info(f"Nothing is training now. Showing the {min(RECENT, len(runs))} most recent runs.")

    for _, run in active.iterrows():
        bar, stop = st.columns([6, 1])
        if run["status"] == "running":
            epoch_text = f"epoch {int(run['epochs_completed']) + 1}/{run['epochs']}"
            bar.progress(
                float(run["progress"]),
                text=f"**{run['name']}** · {epoch_text} · "
                f"{ui.percent(run['progress'])} · ETA {ui.duration(run['eta_s'])}",
            )
            if stop.button(
                "Stop", key=f"live_stop_{run['id']}", help="Stop after this batch; keeps the last full epoch."
            ):
                db.request_stop(int(run["id"]))
        else:
            bar.progress(0.0, text=f"**{run['name']}** · queued")

    steps = db.step_metrics(shown["id"].tolist())
    epochs = db.epoch_metrics(shown["id"].tolist())
    left, right = st.columns(2)
    left.plotly_chart(charts.step_curves(steps, shown, "loss"), key="live_loss")
    right.plotly_chart(charts.step_curves(steps, shown, "accuracy"), key="live_acc")
    left, right = st.columns(2)
    left.plotly_chart(charts.epoch_curves(epochs, shown), key="live_epochs")
    right.plotly_chart(charts.epoch_curves(epochs, shown, "loss"), key="live_epoch_loss")


live_view()
