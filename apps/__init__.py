"""Gradio apps, one per task, joined in tabs by apps.main."""
