"""Explanations: Grad-CAM, SHAP and LIME, as arrays plus rendered images."""

from .base import Explanation, mass_in_region, overlay, to_display_rgb
from .image import gradcam, grid_segments, lime_image, shap_gradient

METHODS = ("gradcam", "shap", "lime")

__all__ = [
    "METHODS",
    "Explanation",
    "gradcam",
    "grid_segments",
    "lime_image",
    "mass_in_region",
    "overlay",
    "shap_gradient",
    "to_display_rgb",
]
