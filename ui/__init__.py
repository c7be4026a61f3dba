"""Streamlit adapters for the pages in pages/, split by concern: the page frame (`frame`),
presentation mode (`presentation`), views shared by every session (`shared`), who may change
stored state (`roles`), the one way to change it (`actions`), cached loaders (`loaders`) and
widgets several pages share (`widgets`). Pages `import ui` and use the names below.

Decisions live in `lenet`; this package only adapts them to Streamlit (caching, sidebar, toasts).
Every page starts with `setup_page()`, so a page is right however it is reached: through the
router in dashboard.py, or as the very first request on a fresh server (when Streamlit serves a
pages/ folder as old-style pages until some session has run `st.navigation`).
"""

from lenet.tables import duration, percent

from .actions import launch, launch_experiment, start_training, teacher_action
from .feed_view import live_curves, progress_bar, watch_live
from .frame import PAGES, setup_page
from .live_charts import LiveFigure, live_chart
from .loaders import (
    load_checkpoint,
    load_uploaded_checkpoint,
    mirrored_accuracy,
    mistakes,
    test_images,
    workspace,
)
from .presentation import chart, presenting, table
from .roles import (
    MAX_PASSCODE_TRIES,
    is_teacher,
    teacher_passcode,
    view_only_note,
)
from .shared import (
    CHART_REFRESH_S,
    ROOM_SLOW_REFRESH_S,
    SHARED_VIEW_MAX_AGE_S,
    STEP_CHART_REFRESH_S,
    TRAINING_REFRESH_S,
    VIEWER_REFRESH_S,
    SharedFigure,
    follow_store,
    runs_now,
    shared_view,
)
from .widgets import choose_experiment, knob_input, run_state

__all__ = [
    "CHART_REFRESH_S",
    "MAX_PASSCODE_TRIES",
    "PAGES",
    "STEP_CHART_REFRESH_S",
    "ROOM_SLOW_REFRESH_S",
    "SHARED_VIEW_MAX_AGE_S",
    "TRAINING_REFRESH_S",
    "VIEWER_REFRESH_S",
    "LiveFigure",
    "SharedFigure",
    "chart",
    "choose_experiment",
    "duration",
    "follow_store",
    "is_teacher",
    "knob_input",
    "launch",
    "launch_experiment",
    "live_chart",
    "live_curves",
    "load_checkpoint",
    "load_uploaded_checkpoint",
    "mirrored_accuracy",
    "mistakes",
    "percent",
    "presenting",
    "progress_bar",
    "run_state",
    "runs_now",
    "shared_view",
    "start_training",
    "setup_page",
    "table",
    "teacher_action",
    "teacher_passcode",
    "test_images",
    "view_only_note",
    "watch_live",
    "workspace",
]
