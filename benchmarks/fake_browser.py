"""A Streamlit session driven the way a browser tab drives it, without a browser.

It speaks the frontend's protocol over the same websocket (`/_stcore/stream`): it asks for a page,
re-runs fragments on the server's `auto_rerun` timers like the frontend's timer does, and reports
the messages it has cached so the server may answer with references, as it does to a browser. The
server cannot tell it from a tab, which is the point: many of them measure what a class costs the
teacher's machine, and one of them can send a request a browser's UI would never send.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.sync.client import connect

FINISHED = {
    ForwardMsg.FINISHED_SUCCESSFULLY,
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR,
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY,
}


@dataclass
class Run:
    """What one script or fragment run sent back."""

    messages: list[ForwardMsg] = field(default_factory=list)
    bytes_received: int = 0

    def elements(self, kind: str) -> list:
        return [
            getattr(m.delta.new_element, kind)
            for m in self.messages
            if m.WhichOneof("type") == "delta"
            and m.delta.WhichOneof("type") == "new_element"
            and m.delta.new_element.WhichOneof("type") == kind
        ]

    def element(self, kind: str, label_starts: str):
        """The widget of `kind` whose label starts so (the newest, if the run drew it twice): its
        `id` is what a tab sends back as the widget's state."""
        for element in reversed(self.elements(kind)):
            if element.label.startswith(label_starts):
                return element
        raise LookupError(f"no {kind} labelled {label_starts!r} on the page: {self.texts()[:300]}")

    def texts(self) -> str:
        return " ".join(
            str(getattr(m.delta.new_element, m.delta.new_element.WhichOneof("type")))
            for m in self.messages
            if m.WhichOneof("type") == "delta" and m.delta.WhichOneof("type") == "new_element"
        )


class FakeBrowser:
    def __init__(self, base_url: str, page: str = "", query: str = "", timeout: float = 60):
        self.page, self.query, self.timeout = page, query, timeout
        self.page_hash = ""
        self.cached: set[str] = set()
        self.timers: dict[str, float] = {}  # fragment id -> seconds between its auto-reruns
        self._connection = ExitStack()
        self.ws = self._connection.enter_context(
            connect(
                base_url.replace("http", "ws", 1) + "/_stcore/stream",
                subprotocols=["streamlit"],
                origin=base_url,
                max_size=None,
                open_timeout=timeout,
            )
        )

    def close(self) -> None:
        self._connection.close()

    def open(self) -> Run:
        """The first full run of the page, as when the tab opens."""
        return self.rerun()

    def rerun(self, widgets: list[WidgetState] = (), fragment_id: str = "") -> Run:
        message = BackMsg()
        state = message.rerun_script
        state.query_string = self.query
        state.page_name = self.page
        state.page_script_hash = self.page_hash
        state.fragment_id = fragment_id
        state.is_auto_rerun = bool(fragment_id)
        state.cached_message_hashes.extend(sorted(self.cached))
        state.widget_states.widgets.extend(widgets)
        self.ws.send(message.SerializeToString())
        return self._read_run(full=not fragment_id)

    def click(self, button_id: str) -> Run:
        """Send a button press, whether or not this session was ever shown that button."""
        return self.rerun([WidgetState(id=button_id, trigger_value=True)])

    def refresh_fragments(self) -> list[Run]:
        """One tick of every fragment timer the server asked this tab to keep."""
        return [self.rerun(fragment_id=fragment) for fragment in list(self.timers)]

    def _read_run(self, full: bool) -> Run:
        run = Run()
        deadline = time.monotonic() + self.timeout
        while True:
            raw = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            run.bytes_received += len(raw)
            message = ForwardMsg.FromString(raw)
            run.messages.append(message)
            kind = message.WhichOneof("type")
            if message.metadata.cacheable:
                self.cached.add(message.hash)
            if kind == "navigation":  # the page this tab is on (new_session names the entry script)
                self.page_hash = message.navigation.page_script_hash or self.page_hash
            elif kind == "new_session":
                if full:  # the frontend drops its fragment timers; the run sets them again
                    self.timers.clear()
            elif kind == "page_info_changed":
                self.query = message.page_info_changed.query_string
            elif kind == "auto_rerun":
                self.timers[message.auto_rerun.fragment_id] = message.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                self.timers.clear()
            elif kind == "script_finished" and message.script_finished in FINISHED:
                return run
