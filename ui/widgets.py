"""Widgets several pages share: a declared hyperparameter's input, the experiment selector, the
sidebar's training status."""

from __future__ import annotations

import math

import streamlit as st

from lenet.config import KNOBS
from lenet.records import Run
from lenet.tables import duration

from .presentation import presenting


def knob_input(where, name: str, value, key: str):
    """The widget of a declared hyperparameter (lenet.config.KNOBS): its label with its bounds, its
    help, and None (an empty box) where the field allows none. Out-of-range values are not clamped:
    the config refuses them with its reason."""
    knob = KNOBS[name]
    if knob.kind is bool:
        return where.checkbox(knob.label, value=bool(value), key=key, help=_sentence(knob.help))
    step = knob.step or 1
    decimals = max(2, 1 - math.floor(math.log10(step)))
    widget = where.number_input(
        knob.labelled_range(),
        value=value if value is None or knob.kind is float else int(value),
        step=knob.kind(step),
        format="%d" if knob.kind is int else f"%.{decimals}f",
        placeholder=knob.none,
        key=key,
        help=_sentence(knob.help),
    )
    return None if widget is None else knob.kind(widget)


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def run_state(run: Run) -> str:
    """'ETA 1 min 07 s', or 'stopping' once a stop was asked for."""
    return "stopping after this batch" if run.stop_requested else f"ETA {duration(run.eta_s)}"


def choose_experiment(store, every_run_option: bool = False, progress: bool = True) -> int | None:
    """A selector of experiments, newest first, kept in the URL (?experiment=ID), each labelled
    with how many of its runs finished (`progress`), or else with how many it has.

    It opens on the newest launch: the newest experiment, or "every run" (None, where offered) when
    the newest run was launched on its own. None when there are no experiments.
    """
    found = store.list_experiments()
    if not found:
        return None
    count = (lambda e: f"{e.finished}/{e.runs} finished") if progress else (lambda e: f"{e.runs} runs")
    labels = {e.id: f"#{e.id} {e.name} ({count(e)})" for e in found}
    if every_run_option:
        labels = {0: "Every run, newest first", **labels}
    ids = list(labels)
    wanted = st.query_params.get("experiment", "")
    if presenting():  # the current experiment only: the one in the URL, else the newest
        chosen = int(wanted) if wanted.isdigit() and int(wanted) in labels and int(wanted) else found[0].id
        st.query_params["experiment"] = str(chosen)
        st.caption(f"Experiment {labels[chosen]}")
        return chosen
    if wanted.isdigit() and int(wanted) in labels:
        index = ids.index(int(wanted))
    else:
        newest = store.newest_run()
        on_its_own = every_run_option and (newest is None or newest.experiment_id is None)
        index = 0 if on_its_own or not every_run_option else 1
    chosen = st.selectbox("Experiment", ids, index=index, format_func=labels.get, key="experiment")
    st.query_params["experiment"] = str(chosen)
    return chosen or None
