from typing import NamedTuple

import pandas as pd
import streamlit as st

import ui
from lenet import charts, rounds
from lenet.config import ConfigError, applies, default_of
from lenet.records import Round, RoundState, RunStatus, runs_frame
from lenet.store import RunStateError
from lenet.variants import get_variant, list_models

ui.setup_page()
st.title("Class round")
store = ui.workspace().store
game = store.current_round()
teacher = ui.is_teacher()
token = st.query_params.get("student", "")  # who this browser is: kept in the URL across reloads
me = store.student_by_token(token) if token else None
if me is not None and (game is None or me.round_id != game.id):
    me = None  # a token of an archived round


def open_round_form() -> None:
    title = "Open a new round" if game else "Open a round"
    with st.expander(title, expanded=game is None), st.form("open_round"):
        left, middle, right = st.columns(3)
        name = left.text_input("Name", value="Class round")
        runs = middle.number_input(
            "Runs per student", 1, rounds.MAX_RUNS_PER_STUDENT, rounds.RUNS_PER_STUDENT
        )
        public = right.number_input("Public validation images", 100, 6000, rounds.PUBLIC_IMAGES, step=100)
        images = ui.knob_input(left, "train_limit", rounds.TRAIN_LIMIT, key="round_images")
        epochs = ui.knob_input(middle, "epochs", rounds.EPOCHS, key="round_epochs")
        if st.form_submit_button("Open the round", type="primary"):
            try:
                ui.teacher_action(
                    lambda: rounds.open_round(
                        store,
                        name,
                        runs_per_student=int(runs),
                        train_limit=images or rounds.TRAIN_LIMIT,
                        epochs=epochs or rounds.EPOCHS,
                        public_images=int(public),
                    )
                )
            except ConfigError as e:
                st.error(f"Not opened: {e}")
            else:
                st.rerun()


def teacher_controls() -> None:
    left, middle, right, last = st.columns(4)
    if game.state == RoundState.OPEN:
        left.button(
            "Close the round",
            on_click=ui.teacher_action,
            args=(store.advance_round, game.id, RoundState.CLOSED),
        )
    elif game.state == RoundState.CLOSED:
        left.button(
            "Reveal the test scores",
            type="primary",
            on_click=ui.teacher_action,
            args=(store.advance_round, game.id, RoundState.REVEALED),
        )
    middle.button(
        "Resume the round" if game.paused else "Pause the round",
        help="Paused, its runs wait in the queue while yours train.",
        on_click=ui.teacher_action,
        args=(store.pause_round, game.id, not game.paused),
    )
    right.download_button(
        "Export CSV", rounds.export_csv(store, game), file_name=f"round-{game.id}.csv", mime="text/csv"
    )
    students = store.list_students(game.id)
    if students:
        with last.popover("Rename or hide"):
            chosen = st.selectbox("Student", students, format_func=lambda s: s.nickname, key="manage_student")
            new = st.text_input("Nickname", value=chosen.nickname, key=f"rename_{chosen.id}")
            st.button(
                "Rename", on_click=ui.teacher_action, args=(store.rename_student, chosen.id, new.strip())
            )
            st.button(
                "Show on the board" if chosen.hidden else "Hide from the board",
                on_click=ui.teacher_action,
                args=(store.hide_student, chosen.id, not chosen.hidden),
            )


def join_form() -> None:
    if game.state != RoundState.OPEN:
        st.info("This round is closed: no one can join it now.")
        return
    with st.form("join"):
        nickname = st.text_input("Nickname", max_chars=rounds.MAX_NICKNAME, help="Shown on the board.")
        if st.form_submit_button("Join", type="primary"):
            try:
                joined = rounds.join(store, game.id, nickname)
            except RunStateError as e:
                st.error(str(e))
            else:
                st.query_params["student"] = joined.token
                st.rerun()


def submit_form() -> None:
    mine = rounds.runs_of(store, me.token)
    left_runs = game.runs_per_student - len(mine)
    st.markdown(f"**{me.nickname}**: {left_runs} of {game.runs_per_student} runs left")
    st.caption(
        f"Every run trains on {game.train_limit:,} images for {game.epochs} epochs with a seed the server "
        f"draws; {game.public_images:,} validation images score it on the board. Keep this page's address: "
        "it is who you are."
    )
    if game.state != RoundState.OPEN or left_runs <= 0:
        return
    variant = st.selectbox(
        "Variant", list_models(), format_func=lambda v: get_variant(v).title, key="round_variant"
    )
    defaults = get_variant(variant).defaults
    with st.form("submit_run"):
        shown = [n for n in rounds.STUDENT_CHOICES if applies(n, variant)]
        choices = {
            name: ui.knob_input(
                column, name, defaults.get(name, default_of(name)), key=f"round_{name}_{variant}"
            )
            for name, column in zip(shown, st.columns(len(shown)), strict=True)
        }
        if st.form_submit_button("Submit run", type="primary"):
            try:
                run_id = rounds.submit(store, me.token, variant, choices)
            except (RunStateError, ConfigError) as e:
                st.error(f"Not submitted: {e}")
            else:
                ui.start_training()  # the worker pool, started here as for the teacher's launches
                st.success(f"Submitted run #{run_id}.")


class RoundNow(NamedTuple):
    round: Round
    rows: list[rounds.BoardRow]
    table: pd.DataFrame  # the board as people read it
    run_s: float | None  # the mean time a run of the round has taken so far
    scatter: ui.SharedFigure | None  # public against private, after the reveal


def round_now() -> RoundNow:
    """The round and its board, shared by every session: a class of 30 refreshes its pages about
    15 times a second between them."""

    def build() -> RoundNow:
        current = store.get_round(game.id)
        rows = rounds.board(store, current)
        revealed = current.state == RoundState.REVEALED
        scatter = charts.public_private_scatter(rows) if revealed and rows else None
        if scatter is not None:
            scatter = ui.SharedFigure(charts.for_projector(scatter) if ui.presenting() else scatter)
        return RoundNow(
            current, rows, board_table(rows, revealed), rounds.mean_run_seconds(store, current), scatter
        )

    return ui.shared_view(("round", game.id, ui.presenting()), build, max_age_s=ui.SHARED_VIEW_MAX_AGE_S)


def board_table(rows: list[rounds.BoardRow], revealed: bool) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rank": f"{r.rank}{' =' if r.tied else ''}",
            "nickname": r.nickname,
            "public %": "–"
            if r.best_public is None
            else f"{100 * r.best_public:.1f} ± {100 * r.public_se:.1f}",
            **({"private %": ui.percent(r.private), "move": r.move} if revealed else {}),
            "runs": r.runs,
            "best run": r.config,
        }
        for r in rows
    )


def my_runs(mine: list) -> None:
    if not mine:
        return
    st.subheader("Your runs")
    per_run = round_now().run_s
    for run in mine:
        if run.status == RunStatus.QUEUED:
            place = store.queue_position(run.id)
            wait = "paused by the teacher" if place is None else f"number {place} in the queue"
            if place is not None and per_run:
                wait += f", starts in at most about {ui.duration(place * per_run)}"
            st.write(f"#{run.id} {rounds.one_line(run.config)}: queued, {wait}")
        elif run.status == RunStatus.RUNNING:
            st.progress(run.progress, text=f"#{run.id} {rounds.one_line(run.config)}: {ui.run_state(run)}")
        else:
            public = ui.percent(run.public_accuracy)
            st.write(f"#{run.id} {rounds.one_line(run.config)}: {run.status}, public score {public}")
    scored = [run for run in mine if run.public_accuracy is not None]
    if len(scored) > 1 and game.state != RoundState.REVEALED:
        options = [None, *(run.id for run in scored)]
        chosen = st.selectbox(
            "Your final run (its test score counts at the reveal)",
            options,
            index=options.index(me.final_run_id) if me.final_run_id in options else 0,
            format_func=lambda i: "my best public score" if i is None else f"#{i}",
            key="final_run",
        )
        if chosen != me.final_run_id:
            store.choose_final(me, chosen)  # checked: one of the student's own runs
    if any(run.epochs_completed for run in mine):

        def curves():  # rebuilt when one of the student's runs ends an epoch, not at every refresh
            epochs = store.epoch_metrics([run.id for run in mine])
            return ui.LiveFigure(charts.epoch_curves_spec(epochs, runs_frame(mine)))

        progress = lambda: tuple((run.id, run.status, run.epochs_completed) for run in mine)  # noqa: E731
        # redrawn in place as epochs arrive, keeping a run the student hid from the legend
        ui.live_chart(ui.shared_view(("student curves", me.id), curves, revision=progress), "my_curves")


def the_board() -> None:
    current, rows, table, _, scatter = round_now()
    revealed = current.state == RoundState.REVEALED
    st.subheader("The board" + (": the test scores are out" if revealed else ""))
    if not rows:
        st.caption("No one has joined yet.")
        return
    st.table(table, hide_index=True)  # plain text: readable on the projector
    own = next((i for i, r in enumerate(rows) if me is not None and r.student_id == me.id), None)
    if own is not None:  # the student's own row, highlighted by a rule of this page's only
        st.html(
            f'<style>[data-testid="stTable"] tbody tr:nth-child({own + 1}) td'
            " {background-color: #fff3bf; font-weight: 600}</style>"
        )
    st.caption("= : within one standard error of the row above, a tie the public slice cannot break.")
    if revealed:
        st.markdown(rounds.reveal_story(rows, current))
        ui.chart(scatter, "round_scatter")


if teacher:
    open_round_form()
if game is None:
    if not teacher:
        st.info("No class round yet: the teacher opens one.")
    st.stop()
st.caption(f"Round #{game.id} {game.name}: {game.state}{', paused' if game.paused else ''}")
if teacher:
    teacher_controls()
elif me is None:
    join_form()
else:
    submit_form()
if me is not None:
    # while one of the student's runs trains, its bar follows at the room's pace; otherwise what they
    # see (their place in the queue, a score) changes only as runs end
    training = any(run.status == RunStatus.RUNNING for run in rounds.runs_of(store, me.token))

    def my_runs_followed() -> None:
        mine = rounds.runs_of(store, me.token)
        if any(run.status == RunStatus.RUNNING for run in mine) != training:
            st.rerun()  # the pace follows
        my_runs(mine)

    ui.follow_store(my_runs_followed, every_s=ui.VIEWER_REFRESH_S if training else ui.ROOM_SLOW_REFRESH_S)
ui.follow_store(the_board, every_s=ui.TRAINING_REFRESH_S if teacher else ui.ROOM_SLOW_REFRESH_S)
