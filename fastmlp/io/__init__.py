"""Model files (versioned, checksummed, atomic) and exports (ONNX), all carrying the model's
whole input-to-output contract."""

from .model_file import FORMAT, FORMAT_VERSION, load, save  # noqa: F401
from .c_model import read_c_model, write_c_model  # noqa: F401
from .onnx import to_onnx  # noqa: F401

__all__ = ["load", "save", "to_onnx", "write_c_model", "read_c_model", "FORMAT",
           "FORMAT_VERSION"]
