"""The Streamlit dashboard's logic: file-aware cached loaders, downsampling, figures and the page's sections.

dashboard/app.py (the guide's entry point) only lays the page out; everything here is importable and tested
without a browser. The dashboard reads files and never writes them.
"""
