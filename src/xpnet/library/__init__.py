"""The library: the model object, the scikit-learn estimator that trains it, and ONNX export (what
``import xpnet`` offers)."""
