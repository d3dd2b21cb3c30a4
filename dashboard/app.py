"""opmerge dashboard: the Streamlit entry point. Every script run draws the shared frame and routes
to the current page (``frame.run``: ``st.navigation`` over the page scripts in ``app_pages/``).

Run with ``opmerge dashboard`` or ``streamlit run dashboard/app.py``. ``?present=1`` switches to
presentation mode.
"""

# Streamlit runs this file as the module __main__ and leaves it installed as sys.modules["__main__"].
# A worker process that multiprocessing spawns later (the compute backend's Dask workers) re-imports
# that file as __mp_main__: it must not draw the app there.
if __name__ == "__main__":
    from opmerge_dashboard import frame

    frame.run()
