"""The ``numsentry deviate`` demo: a small CNN trained on scikit-learn's digits (``model.onnx``)
and 64 test images (``inputs.npy``); ``make.py`` regenerates both."""
