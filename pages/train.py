import itertools

import streamlit as st

import ui
from lenet import TRAIN_SIZE, experiments
from lenet.config import KNOBS, SWEEPABLE, ConfigError, TrainConfig, applies, check_train_limit
from lenet.presets import PRESETS
from lenet.records import RunStatus
from lenet.variants import get_variant, list_models

# The one-run form: every numeric or on/off setting a command line can set, as declared
FORM_FIELDS = [name for name, knob in KNOBS.items() if knob.flag and knob.kind is not str]

ui.setup_page()
st.title("Train")


def launch_controls() -> None:
    st.subheader("Presets: one click queues a whole comparison")
    for column, preset in zip(st.columns(len(PRESETS)), PRESETS.values(), strict=True):
        with column, st.container(border=True):
            st.markdown(f"**{preset.title}**")
            st.caption(preset.description)
            seeds = st.number_input(
                "Seeds (repeats of every run)",
                min_value=1,
                max_value=experiments.MAX_SEEDS,
                value=1,
                key=f"preset_seeds_{preset.key}",
                help="Several seeds show which differences are real and which are noise.",
            )
            if st.button(f"Queue all {len(preset.configs()) * seeds} runs", key=f"preset_{preset.key}"):
                experiment_id = ui.launch_experiment(experiments.launch_preset, preset.key, int(seeds))
                st.success(f"Queued experiment #{experiment_id}. Follow it on the Live page.")

    st.subheader("Sweep: one knob, several values")
    with st.form("sweep_form"):
        left, middle, right = st.columns(3)
        sweep_variant = left.selectbox(
            "Variant",
            list_models(),
            index=list_models().index("l2"),
            format_func=lambda v: get_variant(v).title,
            key="sweep_variant",
        )
        param = middle.selectbox(
            "Vary",
            SWEEPABLE,
            index=SWEEPABLE.index("weight_decay"),  # the values below are weight decays
            format_func=lambda p: KNOBS[p].label,
            key="sweep_param",
        )
        values = right.text_input(
            "Values (comma-separated)", value="0, 0.0003, 0.001, 0.003, 0.01, 0.03", key="sweep_values"
        )
        left, middle, right = st.columns(3)
        sweep_seeds = left.number_input(
            "Seeds", min_value=1, max_value=experiments.MAX_SEEDS, value=3, key="sweep_seeds"
        )
        sweep_epochs = ui.knob_input(middle, "epochs", 20, key="sweep_epochs")
        sweep_images = ui.knob_input(right, "train_limit", 1000, key="sweep_images")
        if st.form_submit_button("Queue the sweep"):
            try:
                parsed = experiments.parse_values(param, values)
                experiment_id = ui.launch_experiment(
                    experiments.launch_sweep,
                    sweep_variant,
                    param,
                    parsed,
                    int(sweep_seeds),
                    {"epochs": sweep_epochs, "train_limit": sweep_images},
                )
            except ConfigError as e:
                st.error(f"Not queued: {e}")
            else:
                st.success(f"Queued experiment #{experiment_id}. Its chart is on the Results page.")

    st.subheader("One run")
    variant = st.selectbox(
        "Variant", list_models(), format_func=lambda v: get_variant(v).title, key="variant"
    )
    st.caption(get_variant(variant).summary)
    defaults = TrainConfig.for_variant(variant)
    with st.form("train_form"):
        # Widgets are keyed per variant so switching variant brings back that variant's defaults;
        # only the settings that mean something for this variant (a dropout rate needs the layer).
        shown = [name for name in FORM_FIELDS if applies(name, variant)]
        chosen = {
            name: ui.knob_input(column, name, getattr(defaults, name), key=f"{name}_{variant}")
            for name, column in zip(shown, itertools.cycle(st.columns(3)), strict=False)
        }
        left, right = st.columns([2, 1])
        name = left.text_input("Name (optional)", key=f"name_{variant}")
        repeats = right.number_input(
            "Seeds (repeats)",
            min_value=1,
            max_value=experiments.MAX_SEEDS,
            value=1,
            key=f"repeats_{variant}",
            help="More than one: the same run with seeds seed, seed+1, ... as one experiment.",
        )
        submitted = st.form_submit_button("Queue this run", type="primary")

    if submitted:
        try:
            config = TrainConfig.for_variant(variant, **chosen)
            check_train_limit(config, TRAIN_SIZE)
        except ConfigError as e:
            st.error(f"Not queued: {e}")
        else:
            if repeats > 1:
                experiment_id = ui.launch_experiment(
                    experiments.launch_repeats, config, int(repeats), name.strip() or None
                )
                st.success(
                    f"Queued experiment #{experiment_id} ({int(repeats)} seeds). Follow it on the Live page."
                )
            else:
                [run_id] = ui.launch([config], name=name.strip() or None)
                st.success(f"Queued run #{run_id}. Follow it on the Live page.")


if ui.is_teacher():
    launch_controls()
else:
    ui.view_only_note()

st.subheader("Queue")


def queue() -> None:
    store = ui.workspace().store
    runs = ui.runs_now().active
    if not runs:
        st.caption("Nothing queued or training.")
    for run in runs:
        info, action = st.columns([5, 1])
        with info:
            if run.status == RunStatus.RUNNING:
                st.progress(run.progress, text=f"#{run.id} {run.name}: {ui.run_state(run)}")
            else:
                st.write(f"#{run.id} {run.name}: queued ({run.epochs} epochs)")
        if not ui.is_teacher() or run.stop_requested:
            continue
        running = run.status == RunStatus.RUNNING
        action.button(
            "Stop" if running else "Cancel",
            key=f"{'stop' if running else 'cancel'}_{run.id}",
            on_click=ui.teacher_action,
            args=(store.request_stop if running else store.cancel, run.id),
        )


ui.follow_store(queue)
