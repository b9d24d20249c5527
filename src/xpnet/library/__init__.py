"""The library (what ``import xpnet`` offers): the scikit-learn estimator on the model record, and ONNX export."""
