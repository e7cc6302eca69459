"""Object detection: boxes from labelled photos (Pascal VOC, COCO), on the ImageNet-pretrained
EfficientNet-Lite0, exported to TFLite with decoding and NMS inside (builtin ops only)."""

from ..data.detection import DetectionData, load_boxes, make_shapes, read_coco, read_voc, split
from .data import augment
from .detector import ObjectDetector, ObjectDetectorConfig
from .metrics import mean_average_precision
from .runner import TFLiteDetector, detect_and_draw, detections, draw_boxes

__all__ = ["DetectionData", "ObjectDetector", "ObjectDetectorConfig", "TFLiteDetector", "augment", "detect_and_draw",
           "detections", "draw_boxes",
           "load_boxes", "make_shapes", "mean_average_precision", "read_coco", "read_voc", "split"]
