"""Backbones by name, for transfer learning: ``get_backbone("mobilenet_v2", shape, weights=...)``."""

from .backbones import BACKBONES, BackboneSpec, backbone_spec, get_backbone

__all__ = ["BACKBONES", "BackboneSpec", "backbone_spec", "get_backbone"]
