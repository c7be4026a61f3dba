import pandas as pd
import streamlit as st

import ui
from lenet import charts
from lenet.records import Run, RunStatus, runs_frame

ui.setup_page(live=True)
st.title("Live")
presenting = ui.presenting()
if not presenting:
    st.caption("Runs train in a background process: closing or refreshing this tab loses nothing.")

RECENT = 5  # finished runs kept on the charts beside the active ones, when showing every run
# the newest launch, unless the URL names another; None: every run
experiment_id = ui.choose_experiment(ui.workspace().store, every_run_option=True)


def on_screen():
    """(every run of the experiment, the active ones as rows in training order, the runs charted),
    shared by every viewer (`ui.shared_view`)."""

    def build():
        runs, active = ui.runs_now()
        if experiment_id is not None:
            runs = [run for run in runs if run.experiment_id == experiment_id]
            active = [run for run in active if run.experiment_id == experiment_id]
        # an experiment is shown whole; "every run" keeps the recent ones
        ended = [run for run in runs if not run.status.active]
        shown = runs_frame(active + ended[: RECENT if experiment_id is None else None])
        return runs, active, shown

    return ui.shared_view(("live runs", experiment_id), build, max_age_s=ui.SHARED_VIEW_MAX_AGE_S)


def live_charts(shown: pd.DataFrame, kind: str) -> list[ui.LiveFigure]:
    """The per-epoch charts (rebuilt only when an epoch ends or a run changes status) or the per-step
    ones (at most once per chart refresh), for every viewer."""

    def build():
        labels = charts.short_labels(shown) if presenting else None
        ids = shown["id"].tolist()
        if kind == "epochs":
            epochs = ui.workspace().store.epoch_metrics(ids)
            figures = [charts.epoch_curves(epochs, shown, metric, labels) for metric in ("accuracy", "loss")]
        else:
            steps = ui.workspace().store.step_metrics(ids)
            figures = [charts.step_curves(steps, shown, metric, labels) for metric in ("loss", "accuracy")]
        return [ui.LiveFigure(charts.for_projector(f) if presenting else f) for f in figures]

    def epochs_changed() -> tuple:
        return tuple(shown[["id", "status", "epochs_completed"]].itertuples(index=False, name=None))

    return ui.shared_view(
        ("live charts", kind, experiment_id, presenting),
        build,
        max_age_s=ui.TRAINING_REFRESH_S if kind == "epochs" else ui.CHART_REFRESH_S,
        revision=epochs_changed if kind == "epochs" else None,
    )


def progress_bars(runs: list[Run], active: list[Run]) -> None:
    if not runs:
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
        if run.status != RunStatus.RUNNING:
            continue
        bar, stop = st.columns([6, 1])
        # the epoch in progress; after the last one, the final evaluation still runs
        epoch_text = f"epoch {min(run.epochs_completed + 1, run.epochs)}/{run.epochs}"
        bar.progress(
            run.progress,
            text=f"**{run.name}** · {epoch_text} · {ui.percent(run.progress)} · {ui.run_state(run)}",
        )
        if teacher and not run.stop_requested:
            stop.button(
                "Stop",
                key=f"live_stop_{run.id}",
                help="Stop after this batch; keeps the last full epoch.",
                on_click=ui.teacher_action,
                args=(ui.workspace().store.request_stop, run.id),
            )
    # the queue on one line: an empty bar per waiting run was a dozen elements redrawn every second
    queued = [f"**{run.name}**" for run in active if run.status != RunStatus.RUNNING]
    if queued:
        st.caption(f"Queued, in training order: {', '.join(queued)}")


def status_view() -> None:
    runs, active, _ = on_screen()
    progress_bars(runs, active)


def charts_view(kind: str) -> None:
    """The two per-epoch or the two per-step charts, side by side."""
    runs, _, shown = on_screen()
    if not runs:
        return
    for column, figure, n in zip(st.columns(2), live_charts(shown, kind), (0, 1), strict=True):
        ui.live_chart(figure, f"live_{kind}_{n}", column)


# The progress bars follow the store every second; the charts at a slower pace, because redrawing a
# plotly chart is what a watching browser spends most of its CPU on (see README, "Watching").
def epoch_charts() -> None:
    charts_view("epochs")


def step_charts() -> None:
    charts_view("steps")


if presenting:  # the chart that shows overfitting first, above the fold; the details below
    ui.follow_store(epoch_charts, every_s=ui.CHART_REFRESH_S)
    ui.follow_store(status_view)
else:
    ui.follow_store(status_view)
    ui.follow_store(epoch_charts, every_s=ui.CHART_REFRESH_S)
ui.follow_store(step_charts, every_s=ui.STEP_CHART_REFRESH_S)
