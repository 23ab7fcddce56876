"""The pip requirements of the inference runtimes, in one place.

setup.py reads this file (by `exec`, before anything is installed: it imports
nothing) for its `[onnx]` and `[openvino]` extras, and `export` writes the
runtime's run-time requirement into an exported pipeline's meta.json.
"""

ONNXRUNTIME = "onnxruntime>=1.17"
ONNX = "onnx>=1.15"
OPENVINO = "openvino>=2025.0"
NNCF = "nncf>=2.16"

# setup.py's extras: onnxruntime runs an exported pipeline and onnx exports
# and quantises one; openvino runs one, nncf makes its static int8, and onnx
# makes the export that OpenVINO converts.
EXTRAS = {"onnx": [ONNXRUNTIME, ONNX], "openvino": [OPENVINO, NNCF, ONNX]}

# What an exported pipeline needs to run (not to be exported), by runtime and
# distribution name: the requirements of its meta.json and package.
RUN_REQUIREMENTS = {"onnx": {"onnxruntime": ONNXRUNTIME}, "openvino": {"openvino": OPENVINO}}
