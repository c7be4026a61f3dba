"""Class rounds in the library and the CLI: joining, the rules of submitting (checked on the server,
so a forged request is refused like a click), the fair queue, and the test set hidden until the
reveal."""

import json
import os
import time
from dataclasses import replace as dataclasses_replace

import pytest

import ui
from lenet import artifacts, rounds
from lenet.cli import main
from lenet.config import ConfigError
from lenet.records import RoundState, in_training_order, runs_frame
from lenet.runs import execute_run
from lenet.store import RunStateError
from lenet.train import TrainConfig

SMALL = {"train_limit": 200, "epochs": 2}


@pytest.fixture
def store(workspace):
    return workspace.store


@pytest.fixture
def game(store):
    return store.get_round(rounds.open_round(store, "Test round", **SMALL))


def test_a_nickname_is_short_printable_and_unique_in_the_round(store, game):
    ada = rounds.join(store, game.id, "  Ada ")
    assert ada.nickname == "Ada" and len(ada.token) >= 20
    for bad in ("", "   ", "x" * 21, "bell\x07"):
        with pytest.raises(RunStateError, match="1 to 20 printable"):
            rounds.join(store, game.id, bad)
    with pytest.raises(RunStateError, match="taken"):
        rounds.join(store, game.id, "ada")  # case-insensitive
    assert [s.nickname for s in store.list_students(game.id)] == ["Ada"]
    assert rounds.student(store, ada.token) == ada  # a reload: the token is who they are
    with pytest.raises(RunStateError, match="unknown student"):
        rounds.student(store, "forged-token")


def test_the_rules_of_submitting_are_the_servers_and_a_refusal_stores_nothing(store, game):
    ada = rounds.join(store, game.id, "Ada")
    first = rounds.submit(store, ada.token, "dropout", {"dropout": 0.3})
    run = store.get_run(first)
    assert run.config.train_limit == 200 and run.config.epochs == 2 and run.config.dropout == 0.3
    assert run.student_id == ada.id and run.experiment_id == game.experiment_id
    refusals = [
        (RunStateError, "already have a run queued", lambda: rounds.submit(store, ada.token, "baseline")),
        (
            ConfigError,
            "cannot set epochs, seed",
            lambda: rounds.submit(store, ada.token, "l2", {"epochs": 500, "seed": 1}),
        ),
        (
            ConfigError,
            "weight decay must be between",
            lambda: rounds.submit(store, ada.token, "l2", {"weight_decay": 5.0}),
        ),
        (ConfigError, "unknown variant", lambda: rounds.submit(store, ada.token, "resnet")),
        (RunStateError, "unknown student", lambda: rounds.submit(store, "forged", "baseline")),
    ]
    for error, message, attempt in refusals:
        with pytest.raises(error, match=message):
            attempt()
    assert [r.id for r in store.list_runs()] == [first]  # nothing else stored

    for _ in range(game.runs_per_student - 1):  # each run finished, then the next submitted
        store.claim_next(os.getpid(), max_running=10)
        store.finish(store.list_runs()[0].id, "finished")
        rounds.submit(store, ada.token, "baseline")
    store.claim_next(os.getpid(), max_running=10)
    store.finish(store.list_runs()[0].id, "finished")
    with pytest.raises(RunStateError, match="used all 3 runs"):
        rounds.submit(store, ada.token, "baseline")
    store.advance_round(game.id, RoundState.CLOSED)
    bob = store.list_students(game.id)  # joining a closed round is refused too
    with pytest.raises(RunStateError, match="not open"):
        rounds.join(store, game.id, "Bob")
    assert len(bob) == 1 and len(store.list_runs()) == 3


def test_the_queue_is_fair_between_students_and_the_teacher_goes_first(store, game):
    """Three students who each submit twice in a burst (one run active at a time each) train
    A1, B1, C1, A2, B2, C2."""
    a, b, c = (rounds.join(store, game.id, name) for name in "ABC")
    names = {}
    for who in (a, b, c):
        names[rounds.submit(store, who.token, "baseline")] = f"{who.nickname}1"
    trained = []

    def train_next():
        run_id = store.claim_next(os.getpid(), max_running=10)
        trained.append(names.get(run_id, "teacher"))
        store.finish(run_id, "finished")
        return run_id

    teacher = store.enqueue(TrainConfig())  # queued after the students, trained before them
    names[teacher] = "teacher"
    train_next()
    for _ in range(3):
        finished = train_next()
        who = next(s for s in (a, b, c) if store.get_run(finished).student_id == s.id)
        names[rounds.submit(store, who.token, "baseline")] = f"{who.nickname}2"  # at once
    store.pause_round(game.id, True)
    assert store.claim_next(os.getpid(), max_running=10) is None  # paused: round runs wait
    store.pause_round(game.id, False)
    for _ in range(3):
        train_next()
    assert trained == ["teacher", "A1", "B1", "C1", "A2", "B2", "C2"]


def test_the_queue_is_listed_in_the_order_it_trains(store, game):
    """Live and Train list the queue as workers take it: A2, submitted before B1, waits behind it
    because A has had a run trained already."""
    a = rounds.join(store, game.id, "A")
    first = rounds.submit(store, a.token, "baseline")
    store.finish(store.claim_next(os.getpid(), max_running=10), "finished")
    second = rounds.submit(store, a.token, "baseline")
    late = rounds.submit(store, rounds.join(store, game.id, "B").token, "baseline")
    teacher = store.enqueue(TrainConfig())
    active = [run for run in store.list_runs() if run.status.active]
    assert first not in store.queue_order()
    assert [run.id for run in in_training_order(active, store.queue_order())] == [teacher, late, second]
    store.pause_round(game.id, True)  # paused: the round's runs wait at the end of the list
    assert store.queue_order() == [teacher]
    assert [run.id for run in in_training_order(active, store.queue_order())] == [teacher, second, late]


def _train_round_runs(workspace):
    for run in sorted(workspace.store.list_runs(("queued",)), key=lambda r: r.id):
        assert workspace.store.claim_next(os.getpid(), max_running=10) == run.id
        execute_run(workspace, run.id)


def test_test_scores_stay_hidden_until_the_reveal(workspace, store, game, idx_dir, monkeypatch, capsys):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(idx_dir))
    ada, bob = rounds.join(store, game.id, "Ada"), rounds.join(store, game.id, "Bob")
    rounds.submit(store, ada.token, "baseline")
    rounds.submit(store, bob.token, "l2", {"weight_decay": 0.05})
    _train_round_runs(workspace)
    runs = store.list_runs(experiment_id=game.experiment_id)
    assert all(r.status == "finished" and 0 <= r.public_accuracy <= 1 for r in runs)
    # nowhere a student or viewer can reach: the run records, the run table's JSON, the
    # checkpoints' metadata, the board and its CSV
    assert all(r.test_accuracy is None for r in runs)
    assert runs_frame(runs)["test_accuracy"].isna().all()
    for run in runs:
        metadata = artifacts.read_metadata(run.checkpoint)
        assert all(metadata[key] is None for key in ("test_accuracy", "confusion_matrix", "mistakes"))
    assert main(["runs", "--json"]) == 0
    assert all(row["test_accuracy"] is None for row in json.loads(capsys.readouterr().out))
    board = rounds.board(store, store.get_round(game.id))
    assert [row.nickname for row in board] == sorted(
        ("Ada", "Bob"), key=lambda n: -next(r.public_accuracy for r in runs if r.name.startswith(n))
    )
    assert all(row.private is None for row in board)
    with pytest.raises(RunStateError, match="only a closed round can become revealed"):
        store.advance_round(game.id, RoundState.REVEALED)

    store.advance_round(game.id, RoundState.CLOSED)
    store.advance_round(game.id, RoundState.REVEALED)
    revealed = store.list_runs(experiment_id=game.experiment_id)
    assert all(0 <= r.test_accuracy <= 1 for r in revealed)
    board = rounds.board(store, store.get_round(game.id))
    assert {row.private_rank for row in board} == {1, 2}
    assert all(row.private == store.get_run(row.final_run_id).test_accuracy for row in board)
    assert "changed place" in rounds.reveal_story(board, store.get_round(game.id))
    with pytest.raises(RunStateError):
        store.advance_round(game.id, RoundState.CLOSED)  # never back


def test_the_round_commands(workspace, capsys, tmp_path):
    assert main(["round", "status"]) == 2 and "no class round yet" in capsys.readouterr().err
    assert main(["round", "open", "--name", "Friday", "--runs-per-student", "2", "--json"]) == 0
    opened = json.loads(capsys.readouterr().out)
    assert (opened["name"], opened["state"], opened["runs_per_student"]) == ("Friday", "open", 2)
    student = rounds.join(workspace.store, opened["id"], "Ada")
    rounds.submit(workspace.store, student.token, "baseline")
    assert main(["round", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "open"
    assert [(r["nickname"], r["runs"], r["best_public"], r["private"]) for r in status["board"]] == [
        ("Ada", 1, None, None)
    ]
    assert main(["round", "reveal"]) == 2 and "only a closed round" in capsys.readouterr().err
    assert main(["round", "close"]) == 0 and main(["round", "reveal"]) == 0
    csv_file = tmp_path / "round.csv"
    assert main(["round", "export", "--csv", str(csv_file)]) == 0
    header, row = csv_file.read_text().splitlines()
    assert header.startswith("nickname,run,status,config,seed,public %") and row.startswith("Ada,")
    assert main(["round", "open", "--epochs", "0"]) == 2 and "epochs must be" in capsys.readouterr().err
    assert main(["round", "open", "--name", "Next"]) == 0  # a new round; the old one stays readable
    assert workspace.store.get_round(opened["id"]).state == "revealed"


def test_results_show_no_test_score_of_a_round_before_its_reveal(
    workspace, store, game, idx_dir, monkeypatch
):
    import sqlite3
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    import ui

    monkeypatch.setenv("FASHION_MNIST_DIR", str(idx_dir))
    monkeypatch.setattr(ui.roles, "client_is_local", lambda: False)  # a student's laptop
    ada = rounds.join(store, game.id, "Ada")
    run_id = rounds.submit(store, ada.token, "baseline")
    _train_round_runs(workspace)
    with sqlite3.connect(store.path) as db:  # what the store holds, unmasked
        [(test,)] = db.execute("SELECT test_accuracy FROM runs WHERE id = ?", (run_id,)).fetchall()
    dashboard = Path(__file__).resolve().parent.parent / "dashboard.py"
    app = AppTest.from_file(str(dashboard), default_timeout=60).run()
    app.switch_page("pages/results.py").run()
    assert not app.exception
    summary, every_run = app.dataframe[0].value, app.dataframe[1].value
    assert summary["test %"].tolist() == ["–"] and every_run["test %"].isna().all()
    assert not [m for m in app.metric if m.label == "Test accuracy"]
    assert any("stay hidden until the teacher reveals" in i.value for i in app.info)
    assert any("test scores stay hidden until the reveal" in m.value for m in app.markdown)
    assert test is not None  # it was measured, and is kept for the reveal


def _class_page(token: str | None = None):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "dashboard.py"), default_timeout=60)
    if token:
        app.query_params["student"] = token
    app.run()
    return app.switch_page("pages/class.py").run()


@pytest.fixture
def student_session(monkeypatch):
    import ui

    monkeypatch.setattr(ui.roles, "client_is_local", lambda: False)  # a laptop in the room
    monkeypatch.setattr(ui.actions, "ensure_workers", lambda workspace: None)  # no training processes


def test_a_student_joins_submits_and_keeps_who_they_are_on_a_reload(store, game, student_session):
    app = _class_page()
    assert not app.exception
    nickname = next(t for t in app.text_input if t.label == "Nickname")
    nickname.input("Ada")
    next(b for b in app.button if b.label == "Join").click().run()
    token = app.query_params["student"]
    assert store.student_by_token(token).nickname == "Ada"
    assert any("3 of 3 runs left" in m.value for m in app.markdown)
    next(b for b in app.button if b.label == "Submit run").click().run()
    assert len(store.list_runs(experiment_id=game.experiment_id)) == 1
    next(b for b in app.button if b.label == "Submit run").click().run()  # while the first is queued
    assert any("already have a run queued" in e.value for e in app.error)
    assert len(store.list_runs(experiment_id=game.experiment_id)) == 1

    time.sleep(ui.SHARED_VIEW_MAX_AGE_S)  # the board is shared between sessions, and this old at most
    again = _class_page(token)  # a reload, or the same URL after a reconnect
    assert not again.exception
    assert any("Ada" in m.value and "2 of 3 runs left" in m.value for m in again.markdown)
    assert not [t for t in again.text_input if t.label == "Nickname"]
    board = again.table[0].value
    assert board["nickname"].tolist() == ["Ada"] and board["public %"].tolist() == ["–"]


def test_the_teacher_opens_closes_and_reveals_from_the_page(store, monkeypatch):
    import ui

    monkeypatch.setattr(ui.roles, "client_is_local", lambda: True)  # the teacher's own machine
    app = _class_page()
    assert not app.exception
    next(b for b in app.button if b.label == "Open the round").click().run()
    game = store.current_round()
    assert game is not None and game.state == RoundState.OPEN and game.runs_per_student == 3
    next(b for b in app.button if b.label == "Close the round").click().run()
    assert store.current_round().state == RoundState.CLOSED
    next(b for b in app.button if b.label == "Reveal the test scores").click().run()
    assert store.current_round().state == RoundState.REVEALED and not app.exception


def test_a_student_cannot_use_the_teachers_controls(store, game, student_session):
    app = _class_page()
    labels = {b.label for b in app.button}
    assert not labels & {"Open the round", "Close the round", "Reveal the test scores", "Pause the round"}


def test_a_student_may_stand_by_another_run_than_the_best_public_one(store, game):
    ada, bob = rounds.join(store, game.id, "Ada"), rounds.join(store, game.id, "Bob")
    first = rounds.submit(store, ada.token, "baseline")
    store.claim_next(os.getpid(), max_running=10)
    store.finish(first, "finished")
    store.record_public_accuracy(first, 0.80)
    second = rounds.submit(store, ada.token, "baseline")
    store.claim_next(os.getpid(), max_running=10)
    store.finish(second, "finished")
    store.record_public_accuracy(second, 0.70)
    [row] = rounds.board(store, store.get_round(game.id))[:1]
    assert row.final_run_id == first and row.best_public == 0.80  # by default, the best public one
    store.choose_final(ada, second)
    assert rounds.board(store, store.get_round(game.id))[0].final_run_id == second
    with pytest.raises(RunStateError, match="not one of Ada's runs"):
        store.choose_final(ada, rounds.submit(store, bob.token, "baseline"))  # forged: Bob's run
    store.advance_round(game.id, RoundState.CLOSED)
    store.advance_round(game.id, RoundState.REVEALED)
    with pytest.raises(RunStateError, match="final runs are set"):
        store.choose_final(ada, first)


def test_a_board_row_says_how_the_reveal_moved_it():
    row = rounds.BoardRow(3, "Ada", 1, 2, 0.8, 0.01, False, "baseline", 5, 0.79, 1, 0.8)
    assert row.move == "▲ 2"
    assert dataclasses_replace(row, private_rank=4).move == "▼ 1"
    assert dataclasses_replace(row, private_rank=3).move == "="
    assert dataclasses_replace(row, private_rank=None).move == ""


def test_the_reveal_story_says_which_way_the_public_scores_were_off(store, game):
    row = rounds.BoardRow(1, "Ada", 1, 2, 0.80, 0.013, False, "baseline", 5, 0.78, 1, 0.8)
    flattered = rounds.reveal_story([row], game)
    assert "2.0 points above the test score" in flattered and "lucky" in flattered
    harder = rounds.reveal_story([dataclasses_replace(row, private=0.83)], game)
    assert "3.0 points below the test score" in harder and "harder than the test set" in harder
