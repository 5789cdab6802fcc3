"""Stage 4, read: a question and the `Hit`s' passages in -> scored `Span`s out (extractive.py).
The span model under it runs on one of several backends (backends.py: PyTorch, or the ONNX
models, float32 or int8, that export.py makes), optionally with concurrent questions sharing
forward passes (batching.py); training.py fine-tunes the reader that ships in qa/reader_model/."""
