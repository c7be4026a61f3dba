"""Class rounds: students join from their own laptops under a nickname, each submits a few runs
within the round's rules, a public slice of the validation images ranks them, and the test set
stays hidden until the teacher reveals it.

Every rule is checked here and in the store's transactions, never in a page: a forged request
gets the same refusal as a click, and changes nothing."""

from __future__ import annotations

import csv
import io
import math
import secrets
from dataclasses import dataclass

import numpy as np

from .config import KNOBS, ConfigError, TrainConfig
from .records import Round, RoundState, Run, RunStatus, Student
from .store import RunStateError, Store
from .variants import list_models

RUNS_PER_STUDENT = 3
TRAIN_LIMIT = 1_000
EPOCHS = 40
# 1,000 of the 6,000 validation images: at 80% accuracy a score's standard error is
# sqrt(0.8 * 0.2 / 1000) = 1.3 points, so the noise of a public board is real and visible.
PUBLIC_IMAGES = 1_000
MAX_RUNS_PER_STUDENT = 10
MAX_NICKNAME = 20
# What a student chooses, besides the variant: its regularization strengths (the data budget, the
# seed and the optimizer are the round's)
STUDENT_CHOICES = ("weight_decay", "dropout", "patience", "augment", "label_smoothing")


def open_round(
    store: Store,
    name: str | None = None,
    *,
    runs_per_student: int = RUNS_PER_STUDENT,
    train_limit: int = TRAIN_LIMIT,
    epochs: int = EPOCHS,
    public_images: int = PUBLIC_IMAGES,
    validation_images: int = 6_000,
) -> int:
    """Open a round (the previous one is archived); its id. Bad settings are refused first."""
    for knob, value in (("train_limit", train_limit), ("epochs", epochs)):
        problem = KNOBS[knob].check(value)
        if problem:
            raise ConfigError(problem)
    if not (isinstance(runs_per_student, int) and 1 <= runs_per_student <= MAX_RUNS_PER_STUDENT):
        raise ConfigError(
            f"runs per student must be from 1 to {MAX_RUNS_PER_STUDENT}, got {runs_per_student!r}"
        )
    if not (isinstance(public_images, int) and 100 <= public_images <= validation_images):
        raise ConfigError(
            f"the public slice must be from 100 to {validation_images:,} validation images, "
            f"got {public_images!r}"
        )
    return store.open_round(
        (name or "").strip() or "Class round",
        runs_per_student=runs_per_student,
        train_limit=train_limit,
        epochs=epochs,
        public_images=public_images,
        public_seed=secrets.randbelow(2**31),
    )


def join(store: Store, round_id: int, nickname: str) -> Student:
    """A student joins: a nickname of 1-20 printable characters, unique in the round; the secret
    token it returns is who they are from now on (kept in their URL)."""
    nickname = (nickname or "").strip()
    if not 1 <= len(nickname) <= MAX_NICKNAME or not nickname.isprintable():
        raise RunStateError(f"a nickname is 1 to {MAX_NICKNAME} printable characters, got {nickname!r}")
    return store.join_round(round_id, nickname, secrets.token_urlsafe(16))


def student(store: Store, token: str) -> Student:
    found = store.student_by_token(token or "")
    if found is None:
        raise RunStateError("unknown student: join the round again with a nickname")
    return found


def submit(store: Store, token: str, variant: str, choices: dict | None = None) -> int:
    """Queue one run for the student holding `token`: their variant and regularization strengths,
    the round's data budget, and a fresh seed the server draws. Its run id."""
    who = student(store, token)
    game = store.get_round(who.round_id)
    choices = {k: v for k, v in (choices or {}).items() if v is not None}
    refused = sorted(set(choices) - set(STUDENT_CHOICES))
    if refused:
        raise ConfigError(f"a round run cannot set {', '.join(refused)}; the round fixes them")
    if variant not in list_models():
        raise ConfigError(f"unknown variant {variant!r}; choose one of: {', '.join(list_models())}")
    config = TrainConfig.for_variant(
        variant, **choices, train_limit=game.train_limit, epochs=game.epochs, seed=secrets.randbelow(2**31)
    )
    return store.submit_round_run(who, config)


def mean_run_seconds(store: Store, game: Round) -> float | None:
    """How long a run of the round has taken to train so far, on average: a queued student's wait."""
    done = [
        run.train_seconds for run in store.list_runs(experiment_id=game.experiment_id) if run.train_seconds
    ]
    return sum(done) / len(done) if done else None


def public_slice(game: Round, validation_images: int) -> np.ndarray:
    """Indices of the round's public validation images: the same for every run of the round."""
    order = np.random.default_rng(game.public_seed).permutation(validation_images)
    return np.sort(order[: min(game.public_images, validation_images)])


def standard_error(accuracy: float, images: int) -> float:
    """Of an accuracy measured on `images` images (binomial)."""
    return math.sqrt(accuracy * (1 - accuracy) / images)


@dataclass(frozen=True)
class BoardRow:
    rank: int
    nickname: str
    student_id: int
    runs: int  # submitted so far
    best_public: float | None
    public_se: float | None
    tied: bool  # within one standard error of the row above
    config: str  # the best run's settings, in one line
    final_run_id: int | None  # the run whose test score counts: chosen, else the best public one
    private: float | None  # its test accuracy; None until the reveal
    private_rank: int | None
    best_public_val: float | None  # the same run on all the validation images

    @property
    def move(self) -> str:
        """How the reveal moved them: '▲ 2', '▼ 1', '=' (blank before the reveal)."""
        if self.private_rank is None:
            return ""
        change = self.rank - self.private_rank
        return f"▲ {change}" if change > 0 else f"▼ {-change}" if change < 0 else "="

    def to_dict(self) -> dict:
        return dict(vars(self))


def one_line(config: TrainConfig) -> str:
    """'dropout, dropout rate 0.3, label smoothing 0.1': the variant and what the student set."""
    set_here = [
        f"{KNOBS[name].noun} {KNOBS[name].show(getattr(config, name))}"
        for name in STUDENT_CHOICES
        if getattr(config, name) not in (None, False, 0, 0.0)
    ]
    return ", ".join([config.variant, *set_here])


def board(store: Store, game: Round) -> list[BoardRow]:
    """The round's ranking on the public slice (best run per student), with each student's private
    score and rank once the round is revealed. Hidden students are left out."""
    runs = store.list_runs(experiment_id=game.experiment_id)
    entries = []
    for who in store.list_students(game.id):
        if who.hidden:
            continue
        mine = [run for run in runs if run.student_id == who.id]
        scored = [run for run in mine if run.status == RunStatus.FINISHED and run.public_accuracy is not None]
        best = max(scored, key=lambda run: (run.public_accuracy, -run.id), default=None)
        final = next((run for run in scored if run.id == who.final_run_id), best)
        entries.append((who, mine, best, final))
    entries.sort(key=lambda e: (e[2] is None, -(e[2].public_accuracy if e[2] else 0), e[0].id))
    revealed = game.state == RoundState.REVEALED
    private = {e[0].id: e[3].test_accuracy for e in entries if revealed and e[3] is not None}
    private_order = sorted(private, key=lambda sid: -private[sid])
    rows, above = [], None
    for rank, (who, mine, best, final) in enumerate(entries, start=1):
        score = best.public_accuracy if best else None
        se = standard_error(score, game.public_images) if score is not None else None
        tied = (
            above is not None
            and score is not None
            and above[0] is not None
            and abs(above[0] - score) <= max(above[1], se)
        )
        rows.append(
            BoardRow(
                rank=rank,
                nickname=who.nickname,
                student_id=who.id,
                runs=len(mine),
                best_public=score,
                public_se=se,
                tied=tied,
                config=one_line(best.config) if best else "",
                final_run_id=final.id if final else None,
                private=private.get(who.id),
                private_rank=private_order.index(who.id) + 1 if who.id in private else None,
                best_public_val=best.val_accuracy if best else None,
            )
        )
        above = (score, se) if score is not None else above
    return rows


def reveal_story(rows: list[BoardRow], game: Round) -> str:
    """What the reveal moved, and why, in words a class can read."""
    ranked = [r for r in rows if r.private is not None and r.best_public is not None]
    if not ranked:
        return "No finished run to compare."
    moved = [r for r in ranked if r.private_rank != r.rank]
    drop = sum(r.best_public - r.private for r in ranked) / len(ranked)
    se = standard_error(0.8, game.public_images)
    noise = (
        f"each public score is measured on {game.public_images:,} images "
        f"(noise of about ±{100 * se:.1f} points at 80%)"
    )
    if drop >= 0:
        why = f"{noise}, and the best of several tries is the one most likely to have been lucky."
    else:  # the slice happened to be harder than the test set: said as it is
        why = f"{noise}: this time the public images were harder than the test set. Noise cuts both ways."
    return (
        f"{len(moved)} of {len(ranked)} students changed place. On average the best public score was "
        f"{100 * abs(drop):.1f} points {'above' if drop >= 0 else 'below'} the test score: {why}"
    )


def export_csv(store: Store, game: Round) -> str:
    """Every round run: nickname, config, seed, public, full-validation and private score (blank
    before the reveal), and its times."""
    students = {s.id: s for s in store.list_students(game.id)}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "nickname",
            "run",
            "status",
            "config",
            "seed",
            "public %",
            "validation %",
            "private %",
            "submitted_at",
            "finished_at",
        ]
    )
    for run in sorted(store.list_runs(experiment_id=game.experiment_id), key=lambda r: r.id):
        writer.writerow(
            [
                students[run.student_id].nickname if run.student_id in students else "",
                run.id,
                run.status,
                one_line(run.config),
                run.config.seed,
                _pct(run.public_accuracy),
                _pct(run.val_accuracy),
                _pct(run.test_accuracy),  # None (blank) until the reveal: the store hides it
                run.created_at,
                run.finished_at or "",
            ]
        )
    return out.getvalue()


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def runs_of(store: Store, token: str) -> list[Run]:
    """The student's own runs, newest first."""
    who = student(store, token)
    game = store.get_round(who.round_id)
    return [run for run in store.list_runs(experiment_id=game.experiment_id) if run.student_id == who.id]
