"""The dashboard's views and shared state: app.py routes, each module here draws one view from obd's numbers."""
