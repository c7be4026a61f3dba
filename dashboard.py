"""Streamlit entry point. For now a single page listing the saved models; the dashboard issue adds
the train, live, results and sandbox pages around it."""

import streamlit as st

from lenet import artifacts

st.set_page_config(page_title="LeNet-5 regularization lab", page_icon="👟", layout="wide")
st.title("LeNet-5 regularization lab")
st.write(
    "Train LeNet-5 on FashionMNIST with and without regularization (dropout, L2, batch norm) "
    "and compare what each one does to accuracy and to the gap between training and validation."
)

checkpoints = artifacts.list_checkpoints()
if checkpoints:
    st.subheader("Saved models")
    st.dataframe(
        [
            {
                "name": c.name,
                "variant": c.variant,
                "source": c.source,
                "test accuracy": None if c.test_accuracy is None else round(100 * c.test_accuracy, 2),
            }
            for c in checkpoints
        ],
        hide_index=True,
    )
else:
    st.info("No saved models yet. Train one in a terminal: `python -m lenet train --variant baseline`.")
