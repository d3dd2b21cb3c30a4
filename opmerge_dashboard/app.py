"""opmerge dashboard: router and shared frame (presets, Reset, the bound teaching parameters).

Run with ``opmerge dashboard`` or ``streamlit run opmerge_dashboard/app.py``. Pages live in
``opmerge_dashboard/app_pages/``; the optional pages of other areas (train, celeba, sfd, mixtures) appear
as soon as their file exists there. ``?present=1`` switches to presentation mode.
"""

# Streamlit runs this file as the module __main__ and leaves it installed as sys.modules["__main__"].
# A worker process that multiprocessing spawns later (the compute backend's Dask workers) re-imports
# that file as __mp_main__: it must not draw the app there.
if __name__ == "__main__":
    from opmerge_dashboard import frame

    frame.run()
