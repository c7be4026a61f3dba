"""Benchmarks that need the dashboard (and so Streamlit), kept out of the `lenet` library."""
