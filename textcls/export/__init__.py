"""What a trained model becomes to be shipped: an ONNX graph and its int8 copy, checked against PyTorch."""
