"""Explanations: Grad-CAM, SHAP and LIME, as arrays plus rendered images (and HTML for texts)."""

from .base import Explanation, html_page, mass_in_region, overlay, to_display_rgb
from .series import SERIES_METHODS, explain_window, lime_series, render_series_explanation, shap_series
from .image import gradcam, grid_segments, lime_image, shap_gradient
from .tabular import FEATURE_METHODS, explain_features, lime_features, render_feature_bars, shap_features
from .text import TEXT_METHODS, align_to_spans, explain_text, lime_text, shap_text, text_html, text_image, word_spans

METHODS = ("gradcam", "shap", "lime")

__all__ = [
    "FEATURE_METHODS",
    "METHODS",
    "SERIES_METHODS",
    "TEXT_METHODS",
    "Explanation",
    "align_to_spans",
    "explain_text",
    "explain_features",
    "explain_window",
    "gradcam",
    "grid_segments",
    "html_page",
    "lime_image",
    "lime_features",
    "lime_series",
    "lime_text",
    "mass_in_region",
    "overlay",
    "render_feature_bars",
    "render_series_explanation",
    "shap_features",
    "shap_gradient",
    "shap_series",
    "shap_text",
    "text_html",
    "text_image",
    "to_display_rgb",
    "word_spans",
]
