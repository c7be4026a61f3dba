import pandas as pd
import streamlit as st

import ui
from lenet import experiments
from lenet.presets import PRESETS

ui.setup_page()
st.title("LeNet-5 regularization lab")
st.write(
    "Train the classic LeNet-5 on FashionMNIST with and without regularization (dropout, L2 weight "
    "decay, batch norm) and watch what each one does to accuracy and to overfitting. Then draw or "
    "upload a garment and see what every saved model thinks it is."
)

demo = PRESETS["quick_demo"]
left, right = st.columns(2)
with left:
    st.subheader("Fastest path for a class")
    st.caption(demo.description)
    if not ui.is_teacher():
        ui.view_only_note()
    elif st.button(
        "Launch the comparison (quick demo)",
        type="primary",
        icon=":material/rocket_launch:",
        key="launch_demo",
    ):
        experiment_id = ui.launch_experiment(experiments.launch_preset, demo.key)
        runs = len(demo.configs())
        st.success(f"Queued experiment #{experiment_id} ({runs} runs). Watch them train on the Live page.")
    st.page_link(
        "pages/sandbox.py",
        label="Open the sandbox: draw a garment, see what each model thinks",
        icon=":material/draw:",
    )
    st.page_link("pages/live.py", label="Watch runs train live", icon=":material/monitoring:")
    st.page_link("pages/results.py", label="Compare finished runs", icon=":material/leaderboard:")
with right:
    st.subheader("Saved models")
    checkpoints = ui.workspace().list_checkpoints()
    if not checkpoints:
        st.info("No saved models yet: launch the demo, or train one on the Train page.")
    else:
        st.caption("Ready in the sandbox. The shipped ones say (pretrained).")
        ui.table(
            pd.DataFrame(
                {
                    "model": c.name,
                    "epochs": c.metadata.get("epochs_completed"),
                    "test accuracy": ui.percent(c.test_accuracy),
                }
                for c in checkpoints
            )
        )
