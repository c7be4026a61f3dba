"""`make run`: Streamlit serving dashboard.py, with the dashboard's libraries imported while it starts.

The browser spends about a second loading Streamlit's frontend before it asks for the first page;
importing `ui` (pandas, plotly, the run store; never torch) in that second means the first page
is drawn as soon as it is asked for. Any `streamlit run` options pass through.
"""

import sys
import threading

from streamlit.web import cli

if __name__ == "__main__":
    threading.Thread(target=__import__, args=("ui",), daemon=True).start()
    sys.argv = ["streamlit", "run", "app.py", *sys.argv[1:]]
    sys.exit(cli.main())
