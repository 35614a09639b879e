"""The web UI: a Gradio app that talks only to the REST gateway, over HTTP."""
