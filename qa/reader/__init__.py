"""Stage 4, read: a question and the `Hit`s' passages in -> scored `Span`s out (extractive.py).
The span model under it runs on one of several backends (backends.py: PyTorch, or the ONNX
models, float32 or int8, that qa/training/reader_export.py makes), chosen and loaded by
loading.py, optionally with concurrent questions sharing forward passes (batching.py). The
reader that ships in qa/reader_model/ is fine-tuned by qa/training/reader_training.py."""
