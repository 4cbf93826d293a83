"""The Recommendations page of the Airflow UI: a FastAPI app over ``recsys_tasks.insights``.

``recsys_ui_plugin.py`` (next to this package) registers it with Airflow; ``app.create_app`` builds
it with injectable engine, configuration and authentication so tests can run it without a server.
"""
