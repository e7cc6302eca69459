"""Explanations: Grad-CAM, SHAP and LIME, as arrays plus rendered images (and HTML for texts)."""

from .base import Explanation, html_page, mass_in_region, overlay, to_display_rgb
from .series import SERIES_METHODS, explain_window, lime_series, render_series_explanation, shap_series
from .image import gradcam, grid_segments, lime_image, shap_gradient
from .text import TEXT_METHODS, align_to_spans, explain_text, lime_text, shap_text, text_html, text_image, word_spans

METHODS = ("gradcam", "shap", "lime")

__all__ = [
    "METHODS",
    "SERIES_METHODS",
    "TEXT_METHODS",
    "Explanation",
    "align_to_spans",
    "explain_text",
    "explain_window",
    "gradcam",
    "grid_segments",
    "html_page",
    "lime_image",
    "lime_series",
    "lime_text",
    "mass_in_region",
    "overlay",
    "render_series_explanation",
    "shap_gradient",
    "shap_series",
    "shap_text",
    "text_html",
    "text_image",
    "to_display_rgb",
    "word_spans",
]
