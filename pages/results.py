import numpy as np
import pandas as pd
import streamlit as st

import ui
from lenet import analysis, charts, experiments, tables
from lenet.data import DataError
from lenet.records import runs_frame

ui.setup_page()
st.title("Results")
store = ui.workspace().store
runs = runs_frame(store.list_runs())
if runs.empty:
    st.info("No runs yet. Queue some on the Train page, or launch the quick demo from Home.")
    st.stop()


def forget_experiment() -> None:
    st.query_params.pop("experiment", None)


def manage_experiment(experiment) -> None:
    with st.expander("Rename or delete this experiment"):
        name_key = f"exp_name_{experiment.id}"
        st.text_input("Name", value=experiment.name, key=name_key)
        st.button(
            "Rename",
            key="rename_experiment",
            on_click=ui.teacher_action,
            # the name as typed when the button is clicked, not as it was when the page was drawn
            args=(lambda: store.rename_experiment(experiment.id, st.session_state[name_key]),),
        )
        st.write(f"Deleting removes its {experiment.runs} runs, their metrics and checkpoints.")
        st.button(
            f"Delete experiment #{experiment.id}",
            key="delete_experiment",
            on_click=ui.teacher_action,
            args=(store.delete_experiment, experiment.id),
            kwargs={"then": forget_experiment},
        )


# -- one experiment: what it shows, in numbers, charts and words ---------------------------------
experiment_id = ui.choose_experiment(store)
read = store.read_experiment(experiment_id) if experiment_id is not None else None
if read is not None:
    experiment = read.experiment
    if not ui.presenting():  # on the projector the teacher says it; the chart comes first
        st.caption(experiment.description)
    rows, sentences = experiments.summary(read)
    if not rows:
        st.info("No run of this experiment has finished yet: follow it on the Live page.")
    else:
        by = experiment.by
        members = runs_frame([run for run in read.runs if run.epochs_completed > 0])
        epochs = read.epochs_frame()
        # the train vs validation curves: under the words when reading, first when presenting
        curves = st.container() if ui.presenting() else None
        st.markdown("\n".join(f"- {sentence}" for sentence in sentences))
        ui.table(tables.summary_table(rows, by))
        if by == "variant":
            ui.chart(charts.gap_by_variant(rows), "exp_gap")
        else:
            ui.chart(charts.sweep_chart(rows, by), "exp_sweep")
        left, right = (curves or st).columns(2)
        ui.chart(charts.mean_curves(epochs, members, "accuracy", by), "exp_acc", left)
        ui.chart(charts.mean_curves(epochs, members, "loss", by), "exp_loss", right)
    if ui.is_teacher():
        manage_experiment(experiment)
    st.divider()
if ui.presenting() and experiment_id is not None:
    runs = runs[runs["experiment_id"] == experiment_id]  # the current experiment only
    st.subheader("Its runs")
else:
    st.subheader("Every run")

# -- the table --------------------------------------------------------------------------------
left, right = st.columns(2)
variants = left.multiselect("Variant", sorted(runs["variant"].unique()), placeholder="all variants")
statuses = right.multiselect("Status", sorted(runs["status"].unique()), placeholder="all statuses")
table = runs[
    runs["variant"].isin(variants or runs["variant"]) & runs["status"].isin(statuses or runs["status"])
]
shown = tables.run_table(table, every_setting=False)
if ui.presenting():
    ui.table(shown.round(1))
else:
    st.dataframe(
        shown,
        hide_index=True,
        column_config={
            c: st.column_config.NumberColumn(format="%.1f", width="small") for c in tables.NUMBER_COLUMNS
        },
    )
st.download_button(
    "Download CSV", tables.run_table(table).to_csv(index=False), file_name="lenet-runs.csv", mime="text/csv"
)

# -- comparisons ------------------------------------------------------------------------------
finished = table[table["epochs_completed"] > 0]
if finished.empty:
    st.stop()
st.subheader("Compare runs")
labels = {int(r["id"]): charts.run_label(r) for _, r in finished.iterrows()}
chosen = st.multiselect(
    "Runs to compare",
    list(labels),
    default=list(labels)[:5],
    format_func=labels.get,
    key="runs",
    bind="query-params",  # a link or bookmark brings back the same comparison
)
compare = finished[finished["id"].isin(chosen)]
if not compare.empty:
    epochs = store.epoch_metrics(compare["id"].tolist())
    ui.chart(charts.epoch_curves_spec(epochs, compare), "cmp_curves")
    ui.chart(charts.gap_panels(epochs, compare), "cmp_gap")
    if compare["test_accuracy"].notna().any():
        ui.chart(charts.test_accuracy_dots(compare), "cmp_test")

    with st.expander("What did regularization do to the weights?"):
        models = {
            labels[int(r["id"])]: (r["variant"], ui.load_checkpoint(r["checkpoint"])[0])
            for _, r in compare.iterrows()
            if r["has_checkpoint"]
        }
        if models:
            values, norms = analysis.weight_report(models)
            ui.chart(charts.weight_histograms(values), "cmp_hist")
            ui.chart(charts.weight_norm_bars(norms), "cmp_norms")

# -- one run in detail ------------------------------------------------------------------------
st.subheader("One run in detail")
with_checkpoint = finished[finished["has_checkpoint"]]
if with_checkpoint.empty:
    st.caption("None of these runs has a checkpoint.")
    st.stop()
run_id = st.selectbox(
    "Run",
    with_checkpoint["id"].tolist(),
    format_func=lambda i: labels[int(i)],
    key="run",
    bind="query-params",
)
run = with_checkpoint.set_index("id").loc[run_id]


def run_detail(run) -> None:
    """Test accuracy, on mirrored images, the confusion matrix, per-class accuracy, the mistakes."""
    if pd.notna(run["student_id"]) and pd.isna(run["test_accuracy"]):
        # a class round's run: nothing measured on the test set is shown before the teacher's reveal
        st.info("A class-round run: its test results stay hidden until the teacher reveals the round.")
        return
    _, metadata = ui.load_checkpoint(run["checkpoint"])
    try:
        mirrored = ui.mirrored_accuracy(run["checkpoint"])
    except DataError:
        mirrored = None
    left, right, _ = st.columns(3)
    left.metric("Test accuracy", ui.percent(run["test_accuracy"]))
    right.metric(
        "On the test images mirrored left-right",
        ui.percent(mirrored),
        help="Shoes facing right, which the training set never shows: what data augmentation is for.",
    )
    if metadata.get("confusion_matrix"):
        left, right = st.columns([3, 2])
        ui.chart(charts.confusion_matrix_figure(metadata["confusion_matrix"]), "detail_cm", left)
        ui.chart(charts.per_class_bars(metadata["per_class_accuracy"], run["variant"]), "detail_pc", right)

    st.markdown("**What it gets wrong** (most confident mistakes first)")
    try:
        test_images = ui.test_images().images
    except DataError as e:
        st.warning(f"The test images are needed for this gallery. {e}")
    else:
        mistakes = ui.mistakes(run["checkpoint"])
        for row_start in range(0, len(mistakes), 8):
            for column, mistake in zip(st.columns(8), mistakes[row_start : row_start + 8], strict=False):
                column.image(np.asarray(test_images[mistake.index]), width=84, clamp=True)
                column.caption(
                    f"**{mistake.predicted_class}** ({mistake.confidence:.0%})  \ntrue: {mistake.true_class}"
                )


run_detail(run)

if ui.is_teacher():
    with st.expander("Delete this run"):
        st.write(f"Deletes run #{run_id}, its metrics and its checkpoint files. This cannot be undone.")
        st.button(
            f"Delete run #{run_id}",
            key="delete_run",
            on_click=ui.teacher_action,
            args=(store.delete, int(run_id)),
        )
