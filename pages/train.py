import streamlit as st

import ui
from lenet import experiments
from lenet.data import TRAIN_SIZE
from lenet.models import get_variant, list_models
from lenet.presets import PRESETS
from lenet.train import (
    MAX_BATCH_SIZE,
    MAX_DROPOUT,
    MAX_EPOCHS,
    MAX_LR,
    MAX_WEIGHT_DECAY,
    ConfigError,
    TrainConfig,
    check_train_limit,
)

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
            "Vary", list(experiments.SWEEPABLE), format_func=lambda p: p.replace("_", " "), key="sweep_param"
        )
        values = right.text_input(
            "Values (comma-separated)", value="0, 0.0003, 0.001, 0.003, 0.01, 0.03", key="sweep_values"
        )
        left, middle, right = st.columns(3)
        sweep_seeds = left.number_input(
            "Seeds", min_value=1, max_value=experiments.MAX_SEEDS, value=3, key="sweep_seeds"
        )
        sweep_epochs = middle.number_input(
            f"Epochs (1-{MAX_EPOCHS})", min_value=0, value=20, key="sweep_epochs"
        )
        sweep_images = right.number_input(
            "Training images (0 = all 54,000)", min_value=0, value=1000, step=500, key="sweep_images"
        )
        if st.form_submit_button("Queue the sweep"):
            try:
                parsed = experiments.parse_values(param, values)
                experiment_id = ui.launch_experiment(
                    experiments.launch_sweep,
                    sweep_variant,
                    param,
                    parsed,
                    int(sweep_seeds),
                    {"epochs": int(sweep_epochs), "train_limit": int(sweep_images) or None},
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
        # Widgets are keyed per variant so switching variant brings back that variant's defaults.
        left, middle, right = st.columns(3)
        epochs = left.number_input(
            # min 0, not 1: a refused value gets the config's explanation instead of a silent clamp
            f"Epochs (1-{MAX_EPOCHS})",
            min_value=0,
            value=defaults.epochs,
            key=f"epochs_{variant}",
        )
        weight_decay = middle.number_input(
            f"Weight decay, L2 (0-{MAX_WEIGHT_DECAY:g})",
            min_value=0.0,
            value=defaults.weight_decay,
            step=0.001,
            format="%.4f",
            key=f"wd_{variant}",
            help="The notebook's L2 used 0.01; 0 = off.",
        )
        lr = right.number_input(
            f"Learning rate (Adam, up to {MAX_LR:g})",
            min_value=0.0,
            value=defaults.lr,
            step=0.0005,
            format="%.5f",
            key=f"lr_{variant}",
        )
        batch_size = left.number_input(
            f"Batch size (1-{MAX_BATCH_SIZE})", min_value=0, value=defaults.batch_size, key=f"batch_{variant}"
        )
        seed = middle.number_input(
            "Seed",
            min_value=0,
            value=defaults.seed,
            key=f"seed_{variant}",
            help="Same seed and settings give the same run.",
        )
        subset = right.number_input(
            "Training images (0 = all 54,000)",
            min_value=0,
            value=0,
            step=1000,
            key=f"subset_{variant}",
            help="A subset trains faster and overfits more.",
        )
        # the knobs only some variants have
        dropout = patience = None
        if get_variant(variant).has_dropout:
            dropout = left.number_input(
                f"Dropout rate (0-{MAX_DROPOUT:g})",
                min_value=0.0,
                value=0.5,
                step=0.1,
                key=f"dropout_{variant}",
                help="Share of the first fully connected layer's outputs zeroed at each training step.",
            )
        if defaults.patience is not None:
            patience = left.number_input(
                "Early-stopping patience (epochs)",
                min_value=1,
                value=defaults.patience,
                key=f"patience_{variant}",
                help="Stop once validation loss has not improved for this many epochs; keep the best epoch.",
            )
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
            config = TrainConfig.for_variant(
                variant,
                epochs=int(epochs),
                weight_decay=float(weight_decay),
                lr=float(lr),
                batch_size=int(batch_size),
                seed=int(seed),
                train_limit=int(subset) or None,
                dropout=None if dropout is None else float(dropout),
                patience=None if patience is None else int(patience),
            )
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
            if run["status"] == "running":
                st.progress(float(run["progress"]), text=f"#{run['id']} {run['name']}: {ui.run_state(run)}")
            else:
                st.write(f"#{run['id']} {run['name']}: queued ({run['epochs']} epochs)")
        if not ui.is_teacher() or run["stop_requested"]:
            continue
        running = run["status"] == "running"
        action.button(
            "Stop" if running else "Cancel",
            key=f"{'stop' if running else 'cancel'}_{run['id']}",
            on_click=ui.teacher_action,
            args=(store.request_stop if running else store.cancel, int(run["id"])),
        )


ui.follow_store(queue)
