import streamlit as st

import ui
from lenet.records import RunStatus
from ui import feed

ui.setup_page(live=True)
st.title("Live")
presenting = ui.presenting()
if not presenting:
    st.caption("Runs train in a background process: closing or refreshing this tab loses nothing.")

# the newest launch, unless the URL names another; None: every run. How many of its runs have
# ended is said by the runs' part below, which follows them.
experiment_id = ui.choose_experiment(ui.workspace().store, every_run_option=True, progress=False)
# What this rerun draws stays as drawn until training starts or ends (then a watcher reruns the
# page) or a run starts or ends, a stop is asked for or the queue changes (then another reruns the
# runs' part); meanwhile the bars and the charts follow the feed by themselves (see ui/feed.py).
now = feed.on_screen(experiment_id)
runs = now.runs
ui.watch_live(experiment_id, now)


@st.fragment
def progress_bars() -> None:
    now = feed.on_screen(experiment_id)  # anew when only this part reruns
    runs, active = now.runs, now.active
    ui.watch_live(experiment_id, now, part="runs")
    if (message := feed.message(runs, active, experiment_id)) is not None:
        st.info(message)
    if not runs:
        return
    if experiment_id is not None and active:  # the whole experiment: how far, and until about when
        ui.progress_bar(experiment_id, feed.experiment_row(now))
    teacher = ui.is_teacher()
    training = [run for run in active if run.status == RunStatus.RUNNING]
    # Runs that see the same batches train together, several at once: in an experiment of more
    # than two runs the bars go two to a row, a list half as long.
    halves = st.columns(2) if len(runs) > 2 else [st.container()]
    for i, run in enumerate(training):
        bar, stop = halves[i % len(halves)].columns([5, 1], vertical_alignment="center")
        ui.progress_bar(experiment_id, feed.progress_row(run), bar)
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
    lines = [f"{now.ended} of {len(runs)} runs ended."] if experiment_id is None else []  # else: its bar
    if queued:
        lines.append(f"Queued, in training order: {', '.join(queued)}")
    if lines:
        st.caption(" ".join(lines))


# The charts that show overfitting first, their curves in sight on a laptop as on the projector: below
# six runs' bars only their titles were, at 1366x768. The sidebar says how many runs train and until
# about when; each run's bar and Stop button follow the charts.
if runs:
    ui.live_curves(experiment_id, "epochs")
progress_bars()
if runs:
    ui.live_curves(experiment_id, "steps")
