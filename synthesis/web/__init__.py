"""The web UI: pages (views.py), their forms (forms.py) and the admin's dashboard (dashboard.py)."""
