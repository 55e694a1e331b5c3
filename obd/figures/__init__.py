"""The dashboard's plotly figures and digit images, built from numbers (no streamlit)."""
