"""What the views share: the session's state, the job boards, models and results, Streamlit's workarounds."""
