"""Who may change stored state (the teacher) and who only watches."""

from __future__ import annotations

import ipaddress
import secrets

import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

# -- who may change stored state ----------------------------------------------------------------
# The teacher is whoever sits at the machine (a browser connected over loopback: a TCP peer address
# that no remote client can fake), or a session that typed the passcode shown there. Everyone else
# who opens the URL watches: the same views, no control that changes stored runs.
PASSCODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o or 1/l/i: read aloud without confusion
MAX_PASSCODE_TRIES = 5


@st.cache_resource
def teacher_passcode() -> str:
    """A fresh passcode per server, printed in its terminal."""
    code = "".join(secrets.choice(PASSCODE_ALPHABET) for _ in range(8))
    print(f"  Teacher passcode (to control the dashboard from another device): {code}", flush=True)
    return code


def client_is_local() -> bool:
    """Whether this session's browser connects from this machine. Unknown counts as remote."""
    ctx = get_script_run_ctx()
    client = runtime.get_instance().get_client(ctx.session_id) if ctx and runtime.exists() else None
    address = getattr(getattr(client, "client_context", None), "remote_ip", None)
    try:
        peer = ipaddress.ip_address(address) if address is not None else None
    except ValueError:
        return False
    # a server on every interface listens dual-stack: an IPv4 peer then reads ::ffff:127.0.0.1
    peer = getattr(peer, "ipv4_mapped", None) or peer
    return peer is not None and peer.is_loopback


def is_teacher() -> bool:
    return client_is_local() or st.session_state.get("teacher_unlocked", False)


def require_teacher() -> None:
    """The last line of defence behind every control that changes stored state."""
    if not is_teacher():
        raise PermissionError("only the teacher can change stored runs")


def view_only_note() -> None:
    st.caption(":material/visibility: View only: the teacher launches, stops and deletes runs.")


def role_controls() -> None:
    """In the sidebar: the passcode for the teacher's other devices, or a way for the teacher in."""
    if client_is_local():
        with st.expander("Control from another device"):
            st.caption("Students who open this page can only watch. On your own tablet or second laptop:")
            st.code(teacher_passcode(), language=None)
        return
    if st.session_state.get("teacher_unlocked"):
        st.caption(":material/key: You control this dashboard (passcode).")
        return
    with st.expander("Teacher? Take control"):
        tries = st.session_state.get("passcode_tries", 0)
        if tries < MAX_PASSCODE_TRIES:
            with st.form("passcode_form", border=False):
                typed = st.text_input("Passcode (printed where the server was started)", type="password")
                if st.form_submit_button("Take control"):
                    if secrets.compare_digest(typed.strip().lower(), teacher_passcode()):
                        st.session_state["teacher_unlocked"] = True
                        st.rerun()
                    tries = st.session_state["passcode_tries"] = tries + 1
                    st.error("Wrong passcode.")
        if tries >= MAX_PASSCODE_TRIES:
            st.error("Too many wrong passcodes. Reload the page to try again.")
